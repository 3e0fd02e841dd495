//! Run-time choice of AVX2+FMA code (§3's fast bodies).
//!
//! The binary is built for the x86-64 baseline so that it runs on every
//! node of a cluster; hot loops have a second body compiled with AVX2 and
//! FMA enabled, chosen here once per process by feature detection.

/// True when the CPU has AVX2 and FMA (detected once, then cached by std).
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Calls `body` compiled with AVX2 enabled if the CPU has it, else as is.
/// For element-wise loops whose results must not depend on the CPU: Rust
/// never fuses a·b + c into an FMA by itself, and IEEE +, −, ×, ÷ and √
/// round the same at every vector width, so both versions agree bit for bit.
#[inline(always)]
pub fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn wide<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if has_avx2_fma() {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { wide(body) };
        }
    }
    body()
}
