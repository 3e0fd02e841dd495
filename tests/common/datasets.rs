//! Small external data sets written for tests (§8): CIFAR-100's binary
//! records and a CelebA folder of aligned JPEGs with its two lists.

use std::path::Path;

/// A CIFAR-100 record: coarse, fine, then the R, G and B planes.
pub fn cifar_record(coarse: u8, fine: u8, rgb: [u8; 3]) -> Vec<u8> {
    let mut record = vec![coarse, fine];
    for value in rgb {
        record.extend(std::iter::repeat_n(value, 1024));
    }
    record
}

pub fn write_cifar(dir: &Path, train: &[(u8, u8, [u8; 3])], test: &[(u8, u8, [u8; 3])]) {
    for (name, records) in [("train.bin", train), ("test.bin", test)] {
        let bytes: Vec<u8> = records
            .iter()
            .flat_map(|&(c, f, rgb)| cifar_record(c, f, rgb))
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

pub const NAMES: &str = "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young";

/// Writes a CelebA folder of `images` (file, colour, attribute 0 and
/// 20 set, partition) with 178×218 aligned JPEGs.
pub fn write_celeba(dir: &Path, images: &[(&str, [u8; 3], bool, u8)]) {
    let mut attr = format!("{}\n{NAMES}\n", images.len());
    let mut partition = String::new();
    std::fs::create_dir_all(dir.join("img_align_celeba")).unwrap();
    for &(file, rgb, set, split) in images {
        let values: Vec<&str> = (0..40)
            .map(|a| {
                if set && (a == 0 || a == 20) {
                    "1"
                } else {
                    "-1"
                }
            })
            .collect();
        attr.push_str(&format!("{file}  {}\n", values.join(" ")));
        partition.push_str(&format!("{file} {split}\n"));
        let image = image::RgbImage::from_pixel(178, 218, image::Rgb(rgb));
        image.save(dir.join("img_align_celeba").join(file)).unwrap();
    }
    std::fs::write(dir.join("list_attr_celeba.txt"), attr).unwrap();
    std::fs::write(dir.join("list_eval_partition.txt"), partition).unwrap();
}
