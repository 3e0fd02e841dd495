//! Run-time choice of SIMD code (§3's fast bodies).
//!
//! The binary is built for the x86-64 baseline so that it runs on every
//! node of a cluster; hot loops have bodies compiled with AVX2+FMA and
//! AVX-512F enabled, chosen once per process by feature detection
//! ([`Isa::selected`]). `COMOD_ISA=scalar|avx2|avx512` caps the choice,
//! so that one machine can measure every body.

use std::fmt;
use std::sync::OnceLock;

/// An instruction set a SIMD body is compiled for, slowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable code (SSE2 at most, as the compiler sees fit).
    Scalar,
    /// AVX2 with FMA: 8 f32 lanes.
    Avx2Fma,
    /// AVX-512F: 16 f32 lanes.
    Avx512,
}

/// Name of the environment variable that caps [`Isa::selected`].
pub const ISA_VARIABLE: &str = "COMOD_ISA";

impl Isa {
    /// Every instruction set, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2Fma, Isa::Avx512];

    /// True when this CPU runs the instruction set (detected by std, cached).
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2Fma => has_avx2_fma(),
            Isa::Avx512 => has_avx512f(),
        }
    }

    /// Every instruction set this CPU runs, slowest first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.supported()).collect()
    }

    /// f32 lanes per vector register.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2Fma => 8,
            Isa::Avx512 => 16,
        }
    }

    /// The name `COMOD_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The instruction set `COMOD_ISA` names, if it is set: an error
    /// message naming the variable when it holds anything else.
    pub fn requested() -> Result<Option<Isa>, String> {
        match std::env::var(ISA_VARIABLE) {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(value)) => Err(format!(
                "{ISA_VARIABLE}={value:?}: must be one of scalar, avx2, avx512"
            )),
            Ok(value) => Isa::ALL
                .into_iter()
                .find(|isa| isa.name() == value)
                .map(Some)
                .ok_or_else(|| {
                    format!("{ISA_VARIABLE}={value:?}: must be one of scalar, avx2, avx512")
                }),
        }
    }

    /// The best instruction set of this CPU, at most the one `COMOD_ISA`
    /// names (read once per process; the binary refuses a value it does
    /// not know before doing anything, see [`Isa::requested`]).
    pub fn selected() -> Isa {
        static SELECTED: OnceLock<Isa> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let best = *Isa::available().last().expect("scalar always runs");
            match Isa::requested() {
                Ok(Some(cap)) => cap.min(best),
                _ => best,
            }
        })
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "AVX2+FMA",
            Isa::Avx512 => "AVX-512F",
        })
    }
}

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

/// True when the CPU has AVX-512F besides AVX2 and FMA.
pub fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma() && std::arch::is_x86_feature_detected!("avx512f")
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
/// Mark the closure `#[inline(always)]`: the compiler may otherwise build
/// it apart, without AVX2, one float at a time.
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

/// [`with_avx2`] with AVX-512F enabled too when it is the selected
/// instruction set ([`Isa::selected`], so that `COMOD_ISA=avx2` measures
/// an AVX2 machine): for element-wise loops whose divisions and square
/// roots run twice as wide, with the same bits. Adam's update of
/// `retrain`'s 161 010 parameters took 24.4 µs against 35.9 µs with AVX2
/// (one thread of an AMD EPYC Zen 5, median of 31 × 20 updates, throwaway
/// timings).
#[inline(always)]
pub fn with_widest<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn widest<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if Isa::selected() == Isa::Avx512 {
            // SAFETY: the CPU supports AVX-512F: `Isa::selected` only
            // selects an instruction set it runs.
            return unsafe { widest(body) };
        }
    }
    with_avx2(body)
}

/// Masks of a vector's first lanes, for the masked loads and stores at
/// the end of a block of channels or columns, and the AVX2 store of a
/// vector's first lanes: one definition for every SIMD body.
#[cfg(target_arch = "x86_64")]
pub mod lanes {
    use std::arch::x86_64::*;

    /// The first `count` of an AVX-512 vector's 16 f32 lanes (all of
    /// them from 16 on).
    #[inline]
    pub fn first16(count: usize) -> __mmask16 {
        ((1u32 << count.min(16)) - 1) as __mmask16
    }

    /// The first `count` of an AVX2 vector's 8 f32 lanes (all of them
    /// from 8 on), as `_mm256_maskload_ps` and `_mm256_maskstore_ps` take
    /// them.
    ///
    /// # Safety
    /// AVX2 must be available (safe to call from code compiled with it).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub fn first8(count: usize) -> __m256i {
        let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(count.min(8) as i32), index)
    }

    /// Stores the first `count` lanes of `v` (all 8 from 8 on) at `at`:
    /// the whole vector, else its half, pair and single values as
    /// `count`'s bits ask. A masked store (`_mm256_maskstore_ps`) would do
    /// it in one instruction, but is slow on some CPUs: the readout's
    /// `dense_lanes` took 42.6–43.1 µs with one per row on a Zen 4,
    /// 40.0–40.4 µs with this (41 µs copying value by value).
    ///
    /// # Safety
    /// AVX2 must be available; `count.min(8)` floats at `at` must be
    /// writable.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub unsafe fn store_first8(at: *mut f32, v: __m256, count: usize) {
        // SAFETY: `count.min(8)` floats at `at` (the contract).
        unsafe {
            if count >= 8 {
                return _mm256_storeu_ps(at, v);
            }
            let (mut at, mut rest) = (at, _mm256_castps256_ps128(v));
            if count & 4 != 0 {
                _mm_storeu_ps(at, rest);
                (at, rest) = (at.add(4), _mm256_extractf128_ps::<1>(v));
            }
            if count & 2 != 0 {
                // Not `_mm_storel_pd`: its body dereferences an f64
                // pointer, which must then be 8-byte aligned, and `at`
                // need not be. That undefined behaviour once compiled the
                // conv mix's full 8-lane stores to 7 lanes in the binary.
                at.cast::<f64>()
                    .write_unaligned(_mm_cvtsd_f64(_mm_castps_pd(rest)));
                (at, rest) = (at.add(2), _mm_movehl_ps(rest, rest));
            }
            if count & 1 != 0 {
                _mm_store_ss(at, rest);
            }
        }
    }
}
