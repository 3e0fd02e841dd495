//! The convolutional network of §8 behind the fine-tuning seam
//! ([`Network`]): a task's readout is its binary head; its training passes
//! run on [`ConvNet`]; a set's frozen cache holds the maps where the
//! per-channel factor applies (after the max-pools that follow the
//! modulated stage) and the gated output; the batch gain runs the fused
//! conv trial (§3) trial by trial, summed in f64.

use std::ops::Range;

use crate::conv::heads::Heads;
use crate::conv::heads::heads_loss;
use crate::conv::modulator::Modulator;
use crate::conv::modulator::channel_factors;
use crate::conv::net::EVAL_ROWS;
use crate::conv::trial::{TrialScratch, trial_flops, trial_gain, unmodulated_features};
use crate::conv::{ConvArch, ConvNet, ConvWorkspace, Evaluation, EvaluationPlan};
use crate::kernel::Body;
use crate::net::{Depth, GainRule, Grads, Modulated, Modulation};
use crate::train::fault::{Fault, check_finite, check_scalar, non_finite};
use crate::train::network::{
    Batch, EvalSet, Frozen, Network, ParamRange, StepActivity, gather_rows,
};

impl Modulated for ConvArch {
    fn coupling_len(&self) -> usize {
        self.modulated_channels()
    }

    fn gain_len(&self) -> usize {
        self.gated_size()
    }
}

impl Modulated for ConvNet<f32> {
    fn coupling_len(&self) -> usize {
        self.arch().coupling_len()
    }

    fn gain_len(&self) -> usize {
        self.arch().gain_len()
    }
}

/// What the frozen convolutional network makes of a set (§4, §8): the
/// maps where the modulated stage's factor applies, from which the
/// modulation methods evaluate (bordered for a conv stage, as
/// [`Evaluation::stage_input`] lays them out), and the gated output with
/// the modulation off, from which `retrain-last` evaluates.
#[derive(Clone, Debug)]
pub struct ConvCache {
    maps: Vec<f32>,
    gated: Vec<f32>,
    /// Values per example of `maps` and of `gated`.
    widths: (usize, usize),
}

/// The buffers of the convolutional network's training passes.
pub struct ConvTrainer {
    ws: ConvWorkspace<f32>,
    grads: Grads<f32>,
    dlogits: Vec<f32>,
    /// m of every row.
    m: Vec<f32>,
}

/// The buffers of its evaluations.
pub struct ConvEvaluator {
    ws: ConvWorkspace<f32>,
    logits: Vec<f32>,
    /// The per-channel factors of the modulated evaluation.
    factors: Vec<f32>,
}

/// The buffers of its gain estimates.
pub struct ConvGainScratch {
    ws: ConvWorkspace<f32>,
    trial: TrialScratch,
    one: Vec<f64>,
    sum: Vec<f64>,
    mean: Vec<f32>,
}

/// The first non-finite output of the last forward pass in `ws`, as a fault.
fn forward_fault(net: &ConvNet<f32>, ws: &ConvWorkspace<f32>) -> Option<Fault> {
    net.first_non_finite(ws)
        .map(|(tensor, index, value)| Fault {
            tensor,
            problem: non_finite(value, index),
        })
}

impl Network for ConvNet<f32> {
    /// The task's head.
    type Readout = usize;
    type Plan = EvaluationPlan;
    type Cache = ConvCache;
    type Trainer = ConvTrainer;
    type Evaluator = ConvEvaluator;
    type GainScratch = ConvGainScratch;

    /// The dense stages packed once for the frozen network's evaluations
    /// and trials.
    fn plan(&self) -> EvaluationPlan {
        EvaluationPlan::new(self, Body::detect())
    }

    fn input_len(&self) -> usize {
        self.arch().input.len()
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    fn trained_params(&self, depth: Depth, head: usize) -> Vec<ParamRange> {
        let (weights, bias) = self.head_of(head);
        let mut ranges = vec![
            ParamRange {
                range: weights,
                weights: true,
            },
            ParamRange {
                range: bias,
                weights: false,
            },
        ];
        if depth == Depth::All {
            for s in 0..self.arch().stages.len() {
                if let Some(r) = self.stage_params(s) {
                    ranges.push(ParamRange {
                        range: r.weights.clone(),
                        weights: true,
                    });
                    ranges.push(ParamRange {
                        range: r.bias.clone(),
                        weights: false,
                    });
                }
            }
        }
        ranges
    }

    fn trainer(&self, _batch: usize) -> ConvTrainer {
        ConvTrainer {
            ws: self.workspace(),
            grads: self.zero_grads(),
            dlogits: Vec::new(),
            m: Vec::new(),
        }
    }

    fn gradients<'t>(
        &self,
        trainer: &'t mut ConvTrainer,
        batch: Batch<'_>,
        modulation: Option<&Modulation<f32>>,
        m: f32,
        head: usize,
        depth: Depth,
    ) -> Result<&'t mut Grads<f32>, Fault> {
        let rows = batch.labels.len();
        trainer.m.clear();
        trainer.m.resize(rows, m);
        let modulator = modulation.map(|modulation| Modulator {
            m: &trainer.m,
            coupling: &modulation.coupling,
            beta: self.arch().beta,
            variance: 0.0,
        });
        let gain = modulation.map(|modulation| &modulation.gain[..]);
        let ws = &mut trainer.ws;
        self.forward(ws, batch.inputs, rows, modulator.as_ref(), gain);
        trainer.dlogits.resize(ws.logits().len(), 0.0);
        let loss = heads_loss(
            ws.logits(),
            self.arch().tasks,
            batch.labels,
            Heads::One(head),
            &mut trainer.dlogits,
        );
        if let Some(fault) = forward_fault(self, ws) {
            return Err(fault);
        }
        check_scalar("training loss", loss as f64)?;
        trainer.grads.params.fill(0.0);
        self.backward(ws, &trainer.dlogits, depth, &mut trainer.grads);
        Ok(&mut trainer.grads)
    }

    fn step_flops(&self, batch: Batch<'_>, depth: Depth) -> f64 {
        let arch = self.arch();
        let forward = arch.forward_macs();
        let backward = match depth {
            // The head's weight gradient is computed on every pass.
            Depth::Coupling | Depth::CouplingAndReadout => 2 * arch.macs_from(arch.modulated_stage),
            Depth::All => 2 * forward,
            Depth::Readout => 2 * arch.logits() * arch.gated_size(),
        };
        2.0 * batch.labels.len() as f64 * (forward + backward) as f64
    }

    fn cache(frozen: &Frozen<Self>, inputs: &[f32], _m: f32) -> ConvCache {
        let net = &frozen.net;
        let arch = net.arch();
        let (len, n, scaling) = (arch.input.len(), arch.stages.len(), arch.scaling_stage());
        let rows = inputs.len() / len;
        let (mut ws, pass) = (net.workspace(), net.evaluation());
        let (mut maps, mut gated) = (Vec::new(), Vec::new());
        for start in (0..rows).step_by(EVAL_ROWS) {
            let chunk = EVAL_ROWS.min(rows - start);
            let images = &inputs[start * len..(start + chunk) * len];
            pass.forward(&mut ws, images, chunk);
            // As the modulated evaluations read it (a conv stage's input
            // bordered), so that they read it where it lies.
            maps.extend_from_slice(pass.stage_input(&ws, scaling));
            gated.extend_from_slice(ws.activation(n));
        }
        let widths = (maps.len().checked_div(rows).unwrap_or(0), arch.gated_size());
        ConvCache {
            maps,
            gated,
            widths,
        }
    }

    fn select(cache: &ConvCache, rows: &[usize]) -> ConvCache {
        ConvCache {
            maps: gather_rows(&cache.maps, cache.widths.0, rows),
            gated: gather_rows(&cache.gated, cache.widths.1, rows),
            widths: cache.widths,
        }
    }

    fn cached_activity(_cache: &ConvCache, _rows: Range<usize>, _depth: Depth) -> Option<&[f32]> {
        None
    }

    fn step_activity(&self, _inputs: &[f32], _depth: Depth, _m: f32) -> Option<StepActivity> {
        None
    }

    fn evaluator(&self) -> ConvEvaluator {
        ConvEvaluator {
            ws: self.workspace(),
            logits: Vec::new(),
            factors: Vec::new(),
        }
    }

    fn evaluate_modulated<'e>(
        frozen: &Frozen<Self>,
        evaluator: &'e mut ConvEvaluator,
        set: &EvalSet<Self>,
        modulation: &Modulation<f32>,
        _head: usize,
        m: f32,
    ) -> Result<&'e [f32], Fault> {
        let net = &frozen.net;
        let arch = net.arch();
        let (n, scaling) = (arch.stages.len(), arch.scaling_stage());
        let cache = set.cache();
        // One factor per channel, the same for every row (m = μ_m): a
        // positive factor commutes with the max-pools, so the cached maps
        // after them are scaled (§8).
        let modulator = Modulator {
            m: &[m],
            coupling: &modulation.coupling,
            beta: arch.beta,
            variance: 0.0,
        };
        channel_factors(&modulator, 1, &mut evaluator.factors);
        check_finite("modulation factor exp(m·c − β)", &evaluator.factors)?;
        evaluator.logits.clear();
        let (rows, pass) = (set.len(), Evaluation::planned(net, &frozen.plan));
        let per_row = cache.widths.0;
        for start in (0..rows).step_by(EVAL_ROWS) {
            let chunk = EVAL_ROWS.min(rows - start);
            let maps = &cache.maps[start * per_row..(start + chunk) * per_row];
            pass.run_scaled(
                &mut evaluator.ws,
                (maps, &evaluator.factors),
                chunk,
                scaling..n,
                Some(&modulation.gain),
            );
            evaluator.logits.extend_from_slice(evaluator.ws.logits());
        }
        check_finite("logits", &evaluator.logits)?;
        Ok(&evaluator.logits)
    }

    fn evaluate_retrained<'e>(
        &self,
        evaluator: &'e mut ConvEvaluator,
        set: &EvalSet<Self>,
        depth: Depth,
        head: usize,
        _m: f32,
    ) -> Result<&'e [f32], Fault> {
        let arch = self.arch();
        let rows = set.len();
        evaluator.logits.clear();
        if depth == Depth::Readout {
            // Only the head changed: its two logits from the frozen gated
            // output.
            let width = arch.gated_size();
            let (w, b) = self.head_of(head);
            let (w, b) = (&self.params[w], &self.params[b]);
            evaluator.logits.resize(rows * arch.logits(), 0.0);
            for (h, z) in set
                .cache()
                .gated
                .chunks_exact(width)
                .zip(evaluator.logits.chunks_exact_mut(arch.logits()))
            {
                z[2 * head] = b[0] + h.iter().zip(&w[..width]).map(|(a, b)| a * b).sum::<f32>();
                z[2 * head + 1] = b[1] + h.iter().zip(&w[width..]).map(|(a, b)| a * b).sum::<f32>();
            }
        } else {
            let (len, pass) = (arch.input.len(), self.evaluation());
            for start in (0..rows).step_by(EVAL_ROWS) {
                let chunk = EVAL_ROWS.min(rows - start);
                let images = &set.inputs()[start * len..(start + chunk) * len];
                pass.forward(&mut evaluator.ws, images, chunk);
                if let Some(mut fault) = forward_fault(self, &evaluator.ws) {
                    fault.tensor += &format!(" (evaluation rows from {start})");
                    return Err(fault);
                }
                evaluator.logits.extend_from_slice(evaluator.ws.logits());
            }
        }
        check_finite("logits", &evaluator.logits)?;
        Ok(&evaluator.logits)
    }

    fn evaluation_flops(&self, depth: Depth) -> f64 {
        let arch = self.arch();
        match depth {
            Depth::Coupling | Depth::CouplingAndReadout => {
                2.0 * arch.macs_from(arch.scaling_stage()) as f64
            }
            Depth::Readout => 4.0 * arch.gated_size() as f64,
            Depth::All => 2.0 * arch.forward_macs() as f64,
        }
    }

    fn count_correct(&self, logits: &[f32], labels: &[u8], head: usize) -> usize {
        logits
            .chunks_exact(self.arch().logits())
            .zip(labels)
            .filter(|(z, y)| usize::from(z[2 * head + 1] > z[2 * head]) == **y as usize)
            .count()
    }

    fn mean_loss(&self, logits: &[f32], labels: &[u8], head: usize) -> f64 {
        // softplus(z_other − z_label), as the training loss computes it.
        let total: f64 = logits
            .chunks_exact(self.arch().logits())
            .zip(labels)
            .map(|(z, &y)| {
                let y = y as usize;
                let d = (z[2 * head + 1 - y] - z[2 * head + y]) as f64;
                d.max(0.0) + (-d.abs()).exp().ln_1p()
            })
            .sum();
        total / labels.len() as f64
    }

    fn gain_scratch(&self, _trials: usize) -> ConvGainScratch {
        ConvGainScratch {
            ws: self.workspace(),
            trial: TrialScratch::new(self),
            one: vec![0.0; self.arch().gated_size()],
            sum: vec![0.0; self.arch().gated_size()],
            mean: vec![0.0; self.arch().gated_size()],
        }
    }

    fn batch_gain<'s>(
        frozen: &Frozen<Self>,
        scratch: &'s mut ConvGainScratch,
        coupling: &[f32],
        trials: Batch<'_>,
        modulator: &[f32],
        variance: f32,
        rule: GainRule,
    ) -> &'s [f32] {
        let net = &frozen.net;
        let pass = Evaluation::planned(net, &frozen.plan);
        let count = trials.inputs.len() / net.arch().input.len();
        let samples = modulator.len() / count;
        let features = unmodulated_features(net, &mut scratch.ws, trials.inputs, count);
        let per_trial = features.len() / count;
        scratch.sum.fill(0.0);
        for (u, m) in features
            .chunks_exact(per_trial)
            .zip(modulator.chunks_exact(samples))
        {
            trial_gain(
                &pass,
                u,
                m,
                coupling,
                variance,
                rule,
                &mut scratch.trial,
                &mut scratch.one,
            );
            for (s, &o) in scratch.sum.iter_mut().zip(&scratch.one) {
                *s += o;
            }
        }
        for (g, &s) in scratch.mean.iter_mut().zip(&scratch.sum) {
            *g = (s / count as f64) as f32;
        }
        &scratch.mean
    }

    fn trial_flops(frozen: &Frozen<Self>, samples: usize) -> f64 {
        trial_flops(frozen.net.arch(), samples)
    }
}
