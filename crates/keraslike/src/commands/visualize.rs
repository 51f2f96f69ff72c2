//! `keraslike visualize`: a trained classifier's first kernels, and for an image its
//! feature maps, Grad-CAM and saliency, as PNGs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::Args;
use image::RgbImage;

use cli::picture::{enlarged, enlargement, heat_picture, input_picture, overlay};
use keraslike::backend::{self, Backend};
use keraslike::saved_model::{self, ModelCard};
use keraslike::visual::feature_maps::feature_maps;
use keraslike::visual::grad_cam::{Explanation, explain};
use keraslike::visual::kernels::first_conv_kernels;
use keraslike::visual::one_image;

#[derive(Args)]
pub struct VisualizeArgs {
    /// A model written by `mnist` or `face` (model.bpk, its model.toml beside it).
    #[arg(long)]
    model: PathBuf,
    /// An image to look at through the model (read as `predict` reads it): its feature
    /// maps, Grad-CAM and saliency. Without it, only the kernels.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The class Grad-CAM and saliency explain (a class name) [default: the predicted one].
    #[arg(long)]
    class: Option<String>,
    /// Folder for the PNGs (made when missing).
    #[arg(long)]
    out: PathBuf,
    /// Feature maps shown per layer (the first N channels).
    #[arg(long, default_value_t = 64)]
    max_maps: usize,
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
}

/// Pictures of small inputs are enlarged to about this many pixels a side.
const SHOWN: usize = 224;

fn write(path: &Path, picture: &RgbImage, written: &mut Vec<PathBuf>) -> Result<()> {
    cli::chart::write_png(path, picture)?;
    written.push(path.to_path_buf());
    Ok(())
}

pub fn run(args: VisualizeArgs) -> Result<()> {
    if args.out.exists() && !args.out.is_dir() {
        bail!(
            "{}: --out must be a folder, and this is a file",
            args.out.display()
        );
    }
    // Gradients flow to the input and to the last convolution's output; the frozen model
    // runs as at inference (no dropout, BatchNorm's running statistics).
    let device = backend::device(args.backend)?.autodiff();
    let (model, card) = saved_model::load(&args.model, &device)?;
    let model = model.freeze();
    let class = match &args.class {
        None => None,
        Some(name) => Some(
            card.classes
                .iter()
                .position(|c| c == name)
                .with_context(|| {
                    format!(
                        "--class {name}: the model's classes are {}",
                        card.classes.join(", ")
                    )
                })?,
        ),
    };
    let input = match &args.image {
        Some(path) => Some((path, card.image_input(path)?)),
        None => None,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the folder", args.out.display()))?;

    let mut written = Vec::new();
    match first_conv_kernels(&model)? {
        Some(kernels) => write(&args.out.join("kernels.png"), &kernels, &mut written)?,
        None => println!("The model has no Conv2D layer: no kernels to show."),
    }
    if let Some((path, pixels)) = input {
        look_at(&model, &card, path, pixels, class, &args, &mut written)?;
    } else {
        println!("Pass --image FILE for its feature maps, Grad-CAM and saliency.");
    }
    for path in &written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn look_at(
    model: &keraslike::model::Sequential,
    card: &ModelCard,
    path: &Path,
    pixels: Vec<f32>,
    class: Option<usize>,
    args: &VisualizeArgs,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let [c, h, w] = card.model.input;
    let x = one_image(model, card.model.input, &pixels)?;
    let factor = enlargement(h, w, SHOWN);
    let picture = input_picture(&pixels, c, w, h);
    write(
        &args.out.join("input.png"),
        &enlarged(&picture, factor),
        written,
    )?;

    let maps_dir = args.out.join("feature_maps");
    for (i, layer) in feature_maps(model, &card.model, x.clone())?
        .iter()
        .enumerate()
    {
        if i == 0 {
            std::fs::create_dir_all(&maps_dir)
                .with_context(|| format!("{}: cannot create the folder", maps_dir.display()))?;
        }
        let [channels, mh, mw] = layer.shape;
        println!(
            "{}: {} ({channels} maps of {mh}×{mw})",
            layer.name, layer.kind
        );
        let file = maps_dir.join(format!("{}_{}.png", i + 1, layer.name));
        write(&file, &layer.picture(args.max_maps), written)?;
    }

    let Explanation {
        class,
        probabilities,
        cam,
        cam_layer,
        saliency,
    } = explain(model, &card.model, x, class)?;
    let listed: Vec<String> = card
        .classes
        .iter()
        .zip(&probabilities)
        .map(|(name, p)| format!("{name}: {p:.4}"))
        .collect();
    println!(
        "{}: explaining {} ({})",
        path.display(),
        card.classes[class],
        listed.join(", ")
    );
    if let (Some(cam), Some(layer)) = (&cam, &cam_layer) {
        if cam.iter().all(|&v| v == 0.0) {
            println!(
                "Grad-CAM of {} at {layer} is empty: no position of that layer speaks for it \
                 by Grad-CAM's estimate (see saliency.png)",
                card.classes[class]
            );
        } else {
            println!("Grad-CAM of {} at {layer}", card.classes[class]);
        }
        write(
            &args.out.join("gradcam.png"),
            &enlarged(&overlay(&picture, cam), factor),
            written,
        )?;
        write(
            &args.out.join("gradcam_heat.png"),
            &enlarged(&heat_picture(cam, w, h), factor),
            written,
        )?;
    }
    write(
        &args.out.join("saliency.png"),
        &enlarged(&heat_picture(&saliency, w, h), factor),
        written,
    )?;
    // The same numbers for scripts (and the shape `serve` answers with).
    let rows = |v: &[f32]| -> Vec<Vec<f32>> { v.chunks(w).map(<[f32]>::to_vec).collect() };
    let probabilities: serde_json::Map<String, serde_json::Value> = card
        .classes
        .iter()
        .zip(&probabilities)
        .map(|(name, p)| (name.clone(), serde_json::json!(p)))
        .collect();
    let json = serde_json::json!({
        "file": path.display().to_string(),
        "input": pixels.chunks(h * w).map(&rows).collect::<Vec<_>>(),
        "class": card.classes[class],
        "probabilities": probabilities,
        "grad_cam_layer": cam_layer,
        "grad_cam": cam.as_deref().map(rows),
        "saliency": rows(&saliency),
    });
    let file = args.out.join("explanation.json");
    dataset::output::write_atomic(&file, json.to_string().as_bytes())?;
    written.push(file);
    Ok(())
}
