//! Files: safetensors tensors, parameter files (official names), checkpoints.
//!
//! Every error is one line naming the file, meant to be shown to the user as is.

mod checkpoint;
mod tensors;

pub use checkpoint::{
    AdamState, Checkpoint, load_checkpoint, load_network_params, load_params, normalise_param_name,
    save_checkpoint,
};
pub use tensors::{
    MAX_TENSOR_FILE, TensorFile, load_i64_tensors, load_tensors, read_regular_file,
    remove_stale_temporaries, save_tensors, temp_path, write_atomic,
};
