//! Files: safetensors tensors, checkpoints.
