//! Full-resolution rendering, tile by tile, equal to a whole-image pass.
