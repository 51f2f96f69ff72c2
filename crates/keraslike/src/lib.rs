//! The course's Keras exercises on burn: models described like Keras `Sequential`s, with
//! Keras's summary; backends chosen at run time.

pub mod backend;
pub mod data;
pub mod model;
pub mod model_config;
