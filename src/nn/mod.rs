//! The networks: generator G, discriminator D, patch projector F, and their parameters.

use ndarray::ArrayD;
use std::collections::BTreeMap;

/// Parameters (or gradients, or optimizer moments) by official name with the network prefix,
/// e.g. `G.encoder.convs.2.conv1.0.weight`, `D.final_linear.0.weight`, `F.mlp_1.2.bias`,
/// in the official shapes.
pub type ParamMap<T> = BTreeMap<String, ArrayD<T>>;
