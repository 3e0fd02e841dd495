//! The kernel allocates nothing per trial (§3): after a warm-up call,
//! a batch of 8 trials and a batch of 128 trials make the same number of
//! heap allocations (counted by a global allocator that wraps the system's).
//! The few that remain per batch are `matrixmultiply`'s packing buffers in
//! the batched layers below the modulated layer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use comod::data::CANVAS_PIXELS;
use comod::kernel::{BatchScratch, KernelPlan, Trials, batch_gain};
use comod::net::GainRule;
use comod::net::{Arch, Model};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_trial() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (name, layer) in [("paper3", 1), ("deep4", 1), ("local2", 2)] {
        let model = Model::<f32>::init(&Arch::preset(name, layer).unwrap(), 1);
        let plan = KernelPlan::new(&model);
        let samples = 200;
        let mut scratch = BatchScratch::new(&model, 128);
        let coupling = vec![1.0f32; plan.modulated_size];
        let canvases = vec![0.5f32; 128 * CANVAS_PIXELS];
        let modulator: Vec<f32> = (0..128 * samples)
            .map(|i| 1.0 + (i % 7) as f32 * 0.05)
            .collect();
        let mut count = |trials: usize| {
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            pool.install(|| {
                batch_gain(
                    &model,
                    &plan,
                    &coupling,
                    Trials::Canvases(&canvases[..trials * CANVAS_PIXELS]),
                    &modulator[..trials * samples],
                    GainRule::Correlation,
                    &mut scratch,
                );
            });
            ALLOCATIONS.load(Ordering::SeqCst) - before
        };
        count(128); // warm-up: each worker's scratch grows to its size once
        let (small, large) = (count(8), count(128));
        assert_eq!(
            small, large,
            "{name}: allocations must not grow with the number of trials"
        );
    }
}
