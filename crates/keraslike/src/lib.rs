//! The course's Keras exercises on burn: models described like Keras `Sequential`s, with
//! Keras's summary, `fit` with a history, `evaluate`, `predict`, save and load; backends
//! chosen at run time.

pub mod backend;
pub mod callbacks;
pub mod checkpoints;
pub mod class_mode;
pub mod class_weight;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod fit;
pub mod gan;
pub mod guard;
pub mod history;
pub mod initializers;
pub mod kernels;
pub mod loader;
pub mod lr_schedule;
pub mod model;
pub mod model_config;
pub mod optimizer;
pub mod renderer;
pub mod run_folder;
pub mod saved_model;
pub mod serve;
pub mod visual;
