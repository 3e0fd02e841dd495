//! Pretraining with the modulation off (§4, §8): which architectures it
//! trains alike ([`Arch::pretrains_as`], [`ConvArch::pretrains_as`]), bit
//! for bit.

mod common;

use comod::conv::ConvArch;
use comod::data::benchmark::BenchmarkData;
use comod::net::Arch;
use comod::train::joint::{MultitaskPretrainOptions, pretrain_multitask};
use comod::train::{PretrainOptions, pretrain};

/// The parameters of a short pretraining of `arch` from seed 0.
fn pretrained(arch: &Arch) -> Vec<u32> {
    let options = PretrainOptions {
        max_epochs: 1,
        examples_per_epoch: 400,
        ..PretrainOptions::DEFAULT
    };
    let (model, _) = pretrain(arch, common::shipped_digits(), &options, |_| {}).unwrap();
    common::bits(&model.params)
}

#[test]
fn pretraining_sees_the_modulated_layer_only_through_beta() {
    for preset in ["deep4", "relu-deep4", "relu-local2"] {
        let (l1, l2) = (
            Arch::preset(preset, 1).unwrap(),
            Arch::preset(preset, 2).unwrap(),
        );
        assert!(l1.pretrains_as(&l2) && l2.pretrains_as(&l1), "{preset}");
        assert_eq!(pretrained(&l1), pretrained(&l2), "{preset}");
        // At β ≠ 0 the factor exp(−β) scales whichever layer is modulated:
        // other networks, and the rule says so.
        let with_beta = |arch: &Arch| Arch {
            beta: 0.5,
            ..arch.clone()
        };
        let (b1, b2) = (with_beta(&l1), with_beta(&l2));
        assert!(!b1.pretrains_as(&b2) && !b1.pretrains_as(&l1), "{preset}");
        assert!(b1.pretrains_as(&b1), "{preset}");
        assert_ne!(pretrained(&b1), pretrained(&b2), "{preset}");
        assert_ne!(pretrained(&b1), pretrained(&l1), "{preset}");
    }
    let paper3 = Arch::preset("paper3", 1).unwrap();
    assert!(!paper3.pretrains_as(&Arch::preset("relu-encoder", 1).unwrap()));
    assert!(!paper3.pretrains_as(&Arch::preset("deep4", 1).unwrap()));
}

#[test]
fn conv_pretraining_sees_neither_the_modulated_stage_nor_beta() {
    let data = BenchmarkData::mnist_attributes(common::shipped_digits().clone());
    let options = MultitaskPretrainOptions {
        max_epochs: 1,
        ..MultitaskPretrainOptions::DEFAULT
    };
    let pretrained = |arch: &ConvArch| {
        let (net, _) = pretrain_multitask(&data, arch, &options, &mut |_| {}).unwrap();
        common::bits(&net.params)
    };
    let preset = ConvArch::preset("conv-mnist", data.task_count()).unwrap();
    for width in [0.5, 2.0] {
        let first = preset.variant(width, Some(1)).unwrap();
        let second = preset.variant(width, Some(2)).unwrap();
        // The network runs without a modulator in pretraining: neither the
        // modulated stage nor β enters it.
        let with_beta = ConvArch {
            beta: 0.5,
            ..second.clone()
        };
        assert!(first.pretrains_as(&second) && first.pretrains_as(&with_beta));
        let bits = pretrained(&first);
        assert_eq!(bits, pretrained(&second), "width ×{width}");
        assert_eq!(bits, pretrained(&with_beta), "width ×{width}");
        assert!(!first.pretrains_as(&preset.variant(1.0, Some(1)).unwrap()));
    }
}
