//! Seed derivation: every random draw in sincut comes from a stream keyed by what it is for,
//! so runs are reproducible and resumable without storing generator state.

/// SplitMix64's finaliser: a bijective 64-bit mix with full avalanche.
#[inline]
pub fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One SplitMix64 step (golden-ratio increment, then the finaliser), used to derive
/// independent seeds.
#[inline]
pub fn mix(z: u64) -> u64 {
    finalise(z.wrapping_add(0x9E37_79B9_7F4A_7C15))
}
