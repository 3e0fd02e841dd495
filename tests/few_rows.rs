//! The few-rows products of the training steps (§4) against their plain
//! statement ([`few_rows::reference`]) and against `matrixmultiply`, bit
//! for bit: random row counts up to [`few_rows::MAX_ROWS`], inputs beside
//! and above the 256-input chunk, and many rows with up to
//! [`few_rows::MAX_INPUTS`] inputs; widths off the register width, both
//! layouts of B, strided A, C with a row stride and with β = 0 and 1. On a
//! CPU without AVX2+FMA the path declines every product, which is checked
//! instead.

use comod::net::few_rows::{self, MAX_INPUTS, MAX_ROWS, Product, View, try_product};
use comod::net::simd::Isa;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// One random product: A `[m, k]` read with strides, B either `[k, n]`
/// row-major or the transpose of a `[n, k]` row-major W, C `[m, n]` with a
/// row stride of n + 3.
struct Case {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    a_transposed: bool,
    b: Vec<f32>,
    b_transposed: bool,
    c: Vec<f32>,
    accumulate: bool,
}

impl Case {
    fn new(
        shape: (usize, usize, usize),
        layouts: (bool, bool),
        accumulate: bool,
        seed: u64,
    ) -> Case {
        let (m, k, n) = shape;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut values =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        Case {
            m,
            k,
            n,
            a: values(m * k),
            a_transposed: layouts.0,
            b: values(k * n),
            b_transposed: layouts.1,
            c: values(m * (n + 3)),
            accumulate,
        }
    }

    fn product(&self, c: &mut [f32]) -> Product {
        let (m, k, n) = (self.m as isize, self.k as isize, self.n as isize);
        Product {
            m: self.m,
            k: self.k,
            n: self.n,
            a: View {
                ptr: self.a.as_ptr(),
                rs: if self.a_transposed { 1 } else { k },
                cs: if self.a_transposed { m } else { 1 },
            },
            b: View {
                ptr: self.b.as_ptr(),
                rs: if self.b_transposed { 1 } else { n },
                cs: if self.b_transposed { k } else { 1 },
            },
            accumulate: self.accumulate,
            c: c.as_mut_ptr(),
            rsc: self.n + 3,
        }
    }

    fn matrixmultiply(&self) -> Vec<f32> {
        let mut c = self.c.clone();
        let p = self.product(&mut c);
        // SAFETY: the views describe the case's buffers.
        unsafe {
            matrixmultiply::sgemm(
                p.m,
                p.k,
                p.n,
                1.0,
                p.a.ptr,
                p.a.rs,
                p.a.cs,
                p.b.ptr,
                p.b.rs,
                p.b.cs,
                if p.accumulate { 1.0 } else { 0.0 },
                p.c,
                p.rsc as isize,
                1,
            )
        };
        c
    }

    fn reference(&self) -> Vec<f32> {
        let mut c = self.c.clone();
        // SAFETY: the views describe the case's buffers.
        unsafe { few_rows::reference(&self.product(&mut c)) };
        c
    }

    /// The fast path's C, or None when it declined.
    fn fast(&self) -> Option<Vec<f32>> {
        let mut c = self.c.clone();
        // SAFETY: the views describe the case's buffers.
        unsafe { try_product(&self.product(&mut c)) }.then_some(c)
    }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn fast_path_runs() -> bool {
    Isa::selected() >= Isa::Avx2Fma
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fast_path_reference_and_matrixmultiply_agree_bit_for_bit(
        (m, k) in prop_oneof![
            (1usize..=MAX_ROWS, prop_oneof![1usize..40, 250usize..530]),
            (MAX_ROWS + 1..90, 1usize..=MAX_INPUTS),
        ],
        n in 1usize..70,
        a_transposed in any::<bool>(),
        b_transposed in any::<bool>(),
        accumulate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let case = Case::new((m, k, n), (a_transposed, b_transposed), accumulate, seed);
        let reference = case.reference();
        // Only the m × n outputs change; the padding of each row stays.
        for (i, row) in reference.chunks(n + 3).enumerate() {
            prop_assert_eq!(bits(&row[n..]), bits(&case.c[i * (n + 3) + n..(i + 1) * (n + 3)]));
        }
        if Isa::selected() >= Isa::Avx2Fma {
            prop_assert_eq!(bits(&case.matrixmultiply()), bits(&reference), "matrixmultiply");
        }
        // Many rows are served only with B's rows contiguous (unit column
        // stride: B row-major, or a transposed B of one input).
        let served = m <= MAX_ROWS || !b_transposed || k == 1;
        match case.fast() {
            Some(fast) => {
                prop_assert!(served, "took a product it does not serve");
                prop_assert_eq!(bits(&fast), bits(&reference), "fast path");
            }
            None => prop_assert!(!(served && fast_path_runs()), "declined a product it serves"),
        }
    }
}

#[test]
fn larger_products_and_other_strides_are_declined() {
    let case = Case::new((MAX_ROWS + 1, MAX_INPUTS + 1, 8), (false, false), false, 1);
    assert!(
        case.fast().is_none(),
        "more rows and inputs than the path takes"
    );
    let mut c = vec![0.0f32; 4];
    let a = [1.0f32; 4];
    let b = [1.0f32; 16];
    // B with neither stride 1 (every other element of a [4, 4] buffer).
    let product = Product {
        m: 2,
        k: 2,
        n: 2,
        a: View {
            ptr: a.as_ptr(),
            rs: 2,
            cs: 1,
        },
        b: View {
            ptr: b.as_ptr(),
            rs: 8,
            cs: 2,
        },
        accumulate: false,
        c: c.as_mut_ptr(),
        rsc: 2,
    };
    // SAFETY: every described element is inside the buffers.
    assert!(!unsafe { try_product(&product) });
    assert_eq!(c, vec![0.0; 4], "a declined product leaves C alone");
}
