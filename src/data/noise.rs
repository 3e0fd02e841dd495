//! The background noise of §1, drawn for several canvases at once.
//!
//! Every pixel of a composite gets `noise_std · z`, z drawn from the
//! composite's own generator by `rand_distr`'s [`StandardNormal`] (a
//! ziggurat of 256 boxes: one 64-bit draw picks a box and a point in it,
//! and nearly every point is accepted at once). [`add_noise_scalar`] is
//! that loop, the plain statement. [`add_noise`] runs the generators of
//! [`LANES`] canvases side by side, one per 64-bit lane of an AVX2
//! register, and takes the ziggurat's common case (one draw, accepted) for
//! all of them at once; a lane whose draw the common case does not accept
//! (about 1.5 % of draws) is handed back, from its state before that draw,
//! to `StandardNormal` itself. So every value is `rand_distr`'s, bit for
//! bit, on every body; a property test holds the two together.
//!
//! The common case needs the ziggurat's box widths, which `rand_distr`
//! keeps private. They are read from `StandardNormal` itself, once per
//! process, by handing it draws whose box and point are known
//! (`ZigguratBoxes::probe`); if it ever stops answering as this module
//! expects, every canvas takes the plain loop.

use rand_distr::{Distribution, StandardNormal};

use crate::data::composite::CANVAS_PIXELS;
use crate::net::simd::Isa;
use crate::rng::Rng;

/// Canvases whose noise [`add_noise`] draws at once: the 64-bit lanes of
/// an AVX2 register. (The AVX-512 body would run 8; machines with it take
/// this one.)
pub const LANES: usize = 4;

/// Adds `noise_std · z` to every pixel of each canvas, z drawn by
/// [`StandardNormal`] from that canvas's generator, pixel after pixel:
/// the plain statement of §1's noise, and the body for a group smaller
/// than [`LANES`] or a CPU without AVX2.
pub fn add_noise_scalar(rngs: &mut [Rng], canvases: &mut [f32], noise_std: f32) {
    assert_eq!(
        canvases.len(),
        rngs.len() * CANVAS_PIXELS,
        "a canvas per generator"
    );
    for (rng, canvas) in rngs
        .iter_mut()
        .zip(canvases.chunks_exact_mut(CANVAS_PIXELS))
    {
        for pixel in canvas {
            let z: f32 = StandardNormal.sample(rng);
            *pixel += noise_std * z;
        }
    }
}

/// [`add_noise_scalar`], with the same values, on the code of `isa`,
/// which the CPU must run: [`LANES`] canvases at once on the AVX2 body
/// (which AVX-512 machines run too) when the group is whole and the
/// ziggurat's boxes were read, else the plain loop (§1's noise; one 64-bit
/// draw per value on every body).
pub fn add_noise(isa: Isa, rngs: &mut [Rng], canvases: &mut [f32], noise_std: f32) {
    assert!(isa.supported(), "this CPU does not run {isa}");
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx2Fma
        && let Ok(group) = <&mut [Rng; LANES]>::try_from(&mut *rngs)
        && let Some(boxes) = x86::ZigguratBoxes::get()
    {
        assert_eq!(
            canvases.len(),
            LANES * CANVAS_PIXELS,
            "a canvas per generator"
        );
        // SAFETY: the CPU runs AVX2, asserted above.
        unsafe { x86::add_noise_avx2(boxes, group, canvases, noise_std) };
        return;
    }
    add_noise_scalar(rngs, canvases, noise_std)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX2 body and what it needs: the ziggurat's boxes read from
    //! `StandardNormal`, the generators' states as words, and the hand-back.

    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use rand::{Rng as _, SeedableRng, TryRng};
    use rand_distr::{Distribution, StandardNormal};

    use super::{CANVAS_PIXELS, LANES, Rng};

    /// The top box of the ziggurat: box `i` accepts a point `x = u·width[i]`,
    /// u in [-1, 1), at once when |x| < width[i + 1], and above the top box
    /// the width is 0, so that its points always take the second test.
    const TOP_BOX: usize = 255;

    /// The widths of the ziggurat's 256 boxes (§1's noise), read from
    /// `StandardNormal`, each beside its bound for the common case: the next
    /// box's width, and 0 (never accepted at once) for the [`TOP_BOX`].
    pub(super) struct ZigguratBoxes {
        /// `[width[i], bound[i]]`, one load per box.
        pairs: [[f64; 2]; 256],
    }

    /// The point `u` = 2⁻¹⁰ of a probe's draw: accepted at once in every box
    /// below the top (each is less than 2¹⁰ times as wide as the next), nearly
    /// always by the top box's second test, and `u·width` is exact.
    const PROBE_U: f64 = 1.0 / 1024.0;

    /// A generator that hands out one chosen 64-bit draw, then counts any
    /// further draws (answered by an ordinary generator, so that a sampler
    /// that asks for more still ends).
    struct ProbeDraw {
        first: Option<u64>,
        further: usize,
        rest: Rng,
    }

    impl TryRng for ProbeDraw {
        type Error = std::convert::Infallible;

        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok((self.try_next_u64()? >> 32) as u32)
        }

        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(match self.first.take() {
                Some(bits) => bits,
                None => {
                    self.further += 1;
                    self.rest.next_u64()
                }
            })
        }

        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dest.chunks_mut(8) {
                let word = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            Ok(())
        }
    }

    /// The draw that `StandardNormal` reads as box `i` and point `u`
    /// ([`PROBE_U`]): the low 8 bits pick the box, the top 52 bits are the
    /// mantissa of a float in [2, 4) from which 3 is taken.
    fn probe_bits(i: usize) -> u64 {
        let mantissa = (3.0 + PROBE_U).to_bits() & ((1 << 52) - 1);
        (mantissa << 12) | i as u64
    }

    impl ZigguratBoxes {
        /// Reads each box's width from `StandardNormal`'s answer to
        /// [`probe_bits`]: `None` unless every box below the top answered
        /// with that one draw, the top box with one further draw, and the
        /// widths fall from box to box, as the common case assumes.
        fn probe() -> Option<ZigguratBoxes> {
            let mut width = [0.0; 256];
            for (i, width) in width.iter_mut().enumerate() {
                // The top box accepts nothing at once: its point is taken after
                // the one further draw of the ziggurat's second test, when that
                // test accepts it (a new point would take two).
                let further = usize::from(i == TOP_BOX);
                *width = (0..64).find_map(|seed| {
                    let mut draw = ProbeDraw {
                        first: Some(probe_bits(i)),
                        further: 0,
                        rest: Rng::seed_from_u64(seed),
                    };
                    let x: f64 = StandardNormal.sample(&mut draw);
                    (draw.further == further).then_some(x / PROBE_U)
                })?;
            }
            let falling = width.windows(2).all(|w| w[0] > w[1] && w[1] > 0.0);
            let bound = |i: usize| if i < TOP_BOX { width[i + 1] } else { 0.0 };
            let pairs = std::array::from_fn(|i| [width[i], bound(i)]);
            falling.then_some(ZigguratBoxes { pairs })
        }

        /// The boxes, probed once per process.
        pub(super) fn get() -> Option<&'static ZigguratBoxes> {
            static BOXES: OnceLock<Option<ZigguratBoxes>> = OnceLock::new();
            BOXES.get_or_init(ZigguratBoxes::probe).as_ref()
        }
    }

    /// The state of a generator as its four words (`rand_xoshiro`'s state
    /// is the words' little-endian bytes, as x86 holds them).
    fn words(rng: &Rng) -> [u64; 4] {
        bytemuck::cast(rng.state())
    }

    /// The generator whose state is `words`.
    fn from_words(words: [u64; 4]) -> Rng {
        Rng::from_seed(bytemuck::cast(words))
    }

    /// The draw the common case did not accept: `StandardNormal` from the
    /// lane's state before it, which it then leaves at the state after.
    #[cold]
    fn draw_aside(state: &mut [u64; 4]) -> f32 {
        let mut rng = from_words(*state);
        let z: f32 = StandardNormal.sample(&mut rng);
        *state = words(&rng);
        z
    }

    /// The generators' states, word `w` of lane `l` at `[w][l]`.
    type Lanes = [[u64; LANES]; 4];

    /// A 64-bit rotation left by `R` (`L` = 64 − `R`) of each lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn rotl<const R: i32, const L: i32>(v: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi64::<R>(v), _mm256_srli_epi64::<L>(v))
    }

    /// [`super::add_noise`]'s AVX2 body: [`common_case`] over the pixels
    /// until a lane misses, [`draw_aside`] for that lane's draw, and on.
    /// The scaled values are kept pixel-major and added to the canvases at
    /// the end (the same one addition per pixel).
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn add_noise_avx2(
        boxes: &ZigguratBoxes,
        rngs: &mut [Rng; LANES],
        canvases: &mut [f32],
        noise_std: f32,
    ) {
        let mut state: Lanes = {
            let states = rngs.each_ref().map(words);
            std::array::from_fn(|w| std::array::from_fn(|l| states[l][w]))
        };
        let mut scaled = [[0.0f32; LANES]; CANVAS_PIXELS];
        let mut before: Lanes = [[0; LANES]; 4];
        let mut done = 0;
        while done < CANVAS_PIXELS {
            // SAFETY: AVX2 guaranteed by the caller.
            let (steps, missed) = unsafe {
                common_case(
                    boxes,
                    &mut state,
                    &mut before,
                    &mut scaled[done..],
                    noise_std,
                )
            };
            done += steps;
            if missed != 0 {
                for l in (0..LANES).filter(|l| missed & (1 << l) != 0) {
                    let mut lane = std::array::from_fn(|w| before[w][l]);
                    scaled[done - 1][l] = noise_std * draw_aside(&mut lane);
                    for (row, word) in state.iter_mut().zip(lane) {
                        row[l] = word;
                    }
                }
            }
        }
        for (l, (rng, canvas)) in rngs
            .iter_mut()
            .zip(canvases.chunks_exact_mut(CANVAS_PIXELS))
            .enumerate()
        {
            *rng = from_words(std::array::from_fn(|w| state[w][l]));
            for (pixel, out) in canvas.iter_mut().zip(&scaled) {
                *pixel += out[l];
            }
        }
    }

    /// xoshiro256++ in four lanes (`rand_xoshiro`'s generator, step for
    /// step) and the ziggurat's common case on the four draws, writing
    /// `noise_std · z` to `out`, until a lane's draw is not accepted at once
    /// or `out` is full: returns the steps taken (the missed one included)
    /// and the missed lanes (a bit each), with `state` after the last step
    /// and `before` before it. Out of line and without calls, so that the
    /// states stay in registers.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    unsafe fn common_case(
        boxes: &ZigguratBoxes,
        state: &mut Lanes,
        before: &mut Lanes,
        out: &mut [[f32; LANES]],
        noise_std: f32,
    ) -> (usize, i32) {
        // SAFETY: each row of `state` holds 4 words.
        let mut s = state.map(|row| unsafe { _mm256_loadu_si256(row.as_ptr().cast()) });
        let mut last = s;
        let low_byte = _mm256_set1_epi64x(0xff);
        // The exponent of [2, 4): the draw's top 52 bits become its mantissa.
        let two_to_four = _mm256_set1_epi64x(1024 << 52);
        let three = _mm256_set1_pd(3.0);
        let sign = _mm256_set1_pd(-0.0);
        let std = _mm_set1_ps(noise_std);
        let mut result = (out.len(), 0);
        for (step, out) in out.iter_mut().enumerate() {
            last = s;
            let bits = _mm256_add_epi64(rotl::<23, 41>(_mm256_add_epi64(s[0], s[3])), s[0]);
            let t = _mm256_slli_epi64::<17>(s[1]);
            s[2] = _mm256_xor_si256(s[2], s[0]);
            s[3] = _mm256_xor_si256(s[3], s[1]);
            s[1] = _mm256_xor_si256(s[1], s[2]);
            s[0] = _mm256_xor_si256(s[0], s[3]);
            s[2] = _mm256_xor_si256(s[2], t);
            s[3] = rotl::<45, 19>(s[3]);
            // Box i, u in [-1, 1), x = u·width[i], accepted when |x| < bound[i].
            let mut i = [0u64; LANES];
            // SAFETY: `i` holds 4 words.
            unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast(), _mm256_and_si256(bits, low_byte)) };
            let u = _mm256_sub_pd(
                _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64::<12>(bits), two_to_four)),
                three,
            );
            // SAFETY: every index is below 256, the table's length.
            let pair =
                i.map(|i| unsafe { _mm_loadu_pd(boxes.pairs.as_ptr().add(i as usize).cast()) });
            let (even, odd) = (
                _mm256_set_m128d(pair[2], pair[0]),
                _mm256_set_m128d(pair[3], pair[1]),
            );
            let (width, bound) = (_mm256_unpacklo_pd(even, odd), _mm256_unpackhi_pd(even, odd));
            let x = _mm256_mul_pd(u, width);
            let accepted = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_andnot_pd(sign, x), bound);
            // SAFETY: `out` holds 4 floats.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm_mul_ps(std, _mm256_cvtpd_ps(x))) };
            let missed = !_mm256_movemask_pd(accepted) & 0b1111;
            if missed != 0 {
                result = (step + 1, missed);
                break;
            }
        }
        for (rows, registers) in [(state, s), (before, last)] {
            for (row, v) in rows.iter_mut().zip(registers) {
                // SAFETY: each row holds 4 words.
                unsafe { _mm256_storeu_si256(row.as_mut_ptr().cast(), v) };
            }
        }
        result
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_boxes_are_read_from_standard_normal() {
            let boxes = ZigguratBoxes::get().expect("StandardNormal answered the probes");
            // The base box is wider than the tail's start, which is about 3.65.
            let [base, tail_start] = [0, 1].map(|i| boxes.pairs[i][0]);
            assert!(base > tail_start && (3.6..3.7).contains(&tail_start));
            assert_eq!(
                boxes.pairs[0][1], tail_start,
                "box 0 accepts below box 1's width"
            );
            assert_eq!(boxes.pairs[TOP_BOX - 1][1], boxes.pairs[TOP_BOX][0]);
            assert_eq!(boxes.pairs[TOP_BOX][1], 0.0);
        }
    }
}
