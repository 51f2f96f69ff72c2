//! Property tests: random and mutated model TOMLs and model cards. Parsing, shape
//! inference and the summary must return a value or an error, never panic; a model that
//! infers cleanly must also build (small ones only: the sizes are bounded here).

use proptest::prelude::*;

use keraslike::model_config::{ModelConfig, summary_table};
use keraslike::saved_model::ModelCard;

const COURSE_CNN: &str = include_str!("../../../configs/mnist-cnn.toml");
const BEST: &str = include_str!("../../../configs/mnist-best.toml");

/// A valid text with some characters replaced, removed or inserted.
fn mutated(valid: &'static str) -> impl Strategy<Value = String> {
    let chars: Vec<char> = valid.chars().collect();
    let len = chars.len();
    prop::collection::vec(
        (
            0..len,
            prop::sample::select(vec![
                '0', '9', '-', '"', '=', '[', ']', '\n', ' ', 'x', '.', 'e',
            ]),
        ),
        1..6,
    )
    .prop_map(move |edits| {
        let mut c = chars.clone();
        for (at, ch) in edits {
            if at % 3 == 0 && at < c.len() {
                c.remove(at);
            } else if at < c.len() {
                c[at] = ch;
            } else {
                c.push(ch);
            }
        }
        c.into_iter().collect()
    })
}

/// Layer tables with small random settings, any order.
fn random_model() -> impl Strategy<Value = String> {
    let layer = prop_oneof![
        (0usize..6, 0usize..5, 0usize..3).prop_map(|(f, k, s)| format!(
            "[[layers]]\ntype = \"Conv2D\"\nfilters = {f}\nkernel_size = {k}\nstrides = {s}\npadding = \"same\"\n"
        )),
        (0usize..4).prop_map(|p| format!("[[layers]]\ntype = \"MaxPooling2D\"\npool_size = {p}\n")),
        Just("[[layers]]\ntype = \"Flatten\"\n".to_string()),
        (0usize..12).prop_map(|u| format!("[[layers]]\ntype = \"Dense\"\nunits = {u}\n")),
        (-1.0f64..2.0).prop_map(|r| format!("[[layers]]\ntype = \"Dropout\"\nrate = {r}\n")),
        (-1.0f64..2.0, -0.5f64..0.5).prop_map(|(m, e)| format!(
            "[[layers]]\ntype = \"BatchNormalization\"\nmomentum = {m}\nepsilon = {e}\n"
        )),
    ];
    (
        0usize..4,
        0usize..12,
        0usize..12,
        prop::collection::vec(layer, 0..6),
    )
        .prop_map(|(c, h, w, layers)| format!("input = [{c}, {h}, {w}]\n{}", layers.concat()))
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Ok(config) = ModelConfig::parse(text, "fuzz.toml")
        && let Ok(infos) = config.infer()
    {
        let _ = summary_table("fuzz", &infos);
        let total: usize = infos.iter().map(|l| l.params()).sum();
        if total < 200_000 {
            let model = keraslike::model::Sequential::new(&config, &burn::tensor::Device::flex());
            prop_assert!(model.is_ok(), "inferred but did not build: {text}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_shipped_configs(text in mutated(COURSE_CNN)) {
        check(&text)?;
    }

    #[test]
    fn mutated_best_config(text in mutated(BEST)) {
        check(&text)?;
    }

    #[test]
    fn random_models(text in random_model()) {
        check(&text)?;
    }

    #[test]
    fn mutated_model_cards(text in mutated(CARD)) {
        if let Ok(card) = toml::from_str::<ModelCard>(&text) {
            let _ = card.model.infer();
        }
    }
}

const CARD: &str = "classes = [\"nonsmile\", \"smile\"]\npreprocess = \"resize\"\ninterpolation = \"nearest\"\n\
    [source.folder]\npath = \"/faces\"\n[model]\ninput = [3, 8, 6]\n\
    [[model.layers]]\ntype = \"Flatten\"\n[[model.layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n";

/// The unmutated inputs are valid, so the mutations start from the success path.
#[test]
fn the_starting_points_are_valid() {
    for text in [COURSE_CNN, BEST] {
        ModelConfig::parse(text, "x").unwrap().infer().unwrap();
    }
    let card: ModelCard = toml::from_str(CARD).unwrap();
    card.model.infer().unwrap();
}
