//! Checks on the real data sets. They need `DL_DATA_DIR` pointing at a folder with
//! `mnist/` and `faces/` (CI sets it to `../shared/data`), so they are ignored by default:
//! `DL_DATA_DIR=../shared/data cargo test -p dataset -- --ignored`.

use std::path::PathBuf;

use dataset::{DATA_DIR_ENV, DataDir, FolderOptions, ImageFolder, MnistKind, mnist};

fn data_root() -> PathBuf {
    PathBuf::from(std::env::var_os(DATA_DIR_ENV).expect("set DL_DATA_DIR to the real data folder"))
}

#[test]
#[ignore = "needs DL_DATA_DIR with the real MNIST files"]
fn real_mnist_histograms_and_means() {
    let data = DataDir::new(Some(data_root())).with_download(false);
    let split = mnist::load(MnistKind::Digits, &data).unwrap();
    assert_eq!(
        split.train.class_histogram(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        split.test.class_histogram(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let (train_mean, test_mean) = (split.train.pixel_mean(), split.test.pixel_mean());
    println!("MNIST pixel means: train {train_mean:.2}, test {test_mean:.2}");
    assert!((train_mean - 33.32).abs() < 0.01, "{train_mean}");
    assert!((test_mean - 33.79).abs() < 0.01, "{test_mean}");
}

#[test]
#[ignore = "needs DL_DATA_DIR with the real faces folder"]
fn real_faces_folder_counts_and_classes() {
    let faces = data_root().join("faces");
    let options = FolderOptions {
        target_size: Some((64, 64)),
        ..FolderOptions::default()
    };
    let train = ImageFolder::open(&faces.join("train"), options.clone()).unwrap();
    let test = ImageFolder::open(&faces.join("test"), options).unwrap();
    println!("{}", train.found_message());
    assert_eq!(train.len(), 10_532);
    assert_eq!(test.len(), 2_633);
    assert_eq!(train.classes(), ["nonsmile", "smile"]);
    assert_eq!(test.classes(), ["nonsmile", "smile"]);
    // Decode one full pass of the test split: every file must be readable.
    let decoded: usize = test.batches(256, None, 0).map(|b| b.unwrap().len()).sum();
    assert_eq!(decoded, 2_633);
}

/// Every real face photo passes the strict JPEG checks (header, compressed data walk,
/// strict decode) and decodes to exactly the pixels of the `image` crate's lenient decoder.
#[test]
#[ignore = "needs DL_DATA_DIR with the real faces folder"]
fn real_faces_pass_the_strict_jpeg_checks_with_unchanged_pixels() {
    let faces = data_root().join("faces");
    let mut checked = 0;
    for split in ["train", "test"] {
        let folder = ImageFolder::open(&faces.join(split), FolderOptions::default()).unwrap();
        for item in folder.items() {
            let ours = dataset::image_file::open(&item.path).unwrap();
            let theirs = image::open(&item.path).unwrap();
            assert_eq!(ours.as_bytes(), theirs.as_bytes(), "{:?}", item.path);
            checked += 1;
        }
    }
    assert_eq!(checked, 13_165);
}
