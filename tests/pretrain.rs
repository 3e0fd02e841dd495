//! Pretraining (§4) with the modulation off: which architectures it
//! trains alike ([`Arch::pretrains_as`]), bit for bit.

mod common;

use comod::net::Arch;
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
        assert!(b1.pretrains_as(&b1.clone()), "{preset}");
        assert_ne!(pretrained(&b1), pretrained(&b2), "{preset}");
        assert_ne!(pretrained(&b1), pretrained(&l1), "{preset}");
    }
    let paper3 = Arch::preset("paper3", 1).unwrap();
    assert!(!paper3.pretrains_as(&Arch::preset("relu-encoder", 1).unwrap()));
    assert!(!paper3.pretrains_as(&Arch::preset("deep4", 1).unwrap()));
}
