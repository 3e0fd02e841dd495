//! Running element-wise loops with AVX2 when the CPU has it.
//!
//! The binary is built for the x86-64 baseline (SSE2) so that it runs on
//! every node of a cluster; hot element-wise loops are compiled a second
//! time with AVX2 enabled and chosen at run time. Rust never fuses a·b + c
//! into an FMA by itself and IEEE +, −, ×, ÷ and √ round the same at every
//! width, so both versions give bit-identical results.

/// True when the AVX2 versions may run (checked once, then cached by std).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Calls `body` compiled with AVX2 enabled if the CPU has it, else as is.
/// `body` must be `#[inline(always)]`-able (a closure or small function)
/// for the wider instructions to reach its loops.
#[inline(always)]
pub fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn wide<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if has_avx2() {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { wide(body) };
        }
    }
    body()
}
