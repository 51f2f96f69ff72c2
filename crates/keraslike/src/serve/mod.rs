//! `keraslike serve`: one local page to draw a digit or drop a photo on, answered by every
//! loaded classifier (keraslike or scratch) with its probabilities, the input as it saw
//! it, its first feature maps and Grad-CAM; and a DCGAN generator's samples and a walk
//! between two latent vectors.
//!
//! The HTTP API the page uses (JSON unless said):
//! - `GET /`: the page.
//! - `GET /api/models`: the classifiers (name, kind, classes, input) and the generator.
//! - `POST /api/predict`: the body is an image file (PNG, JPEG, ...; at most
//!   [`MAX_UPLOAD`] bytes); every classifier's answer, or `{"error": ...}` with 400 (a bad
//!   image) or 413 (too large).
//! - `GET /api/samples?n=16&seed=0`: a PNG grid of n ≤ 64 generated images.
//! - `GET /api/walk?a=1&b=2&t=0.5`: a PNG of the image at t along the way from z(a) to z(b).
//!
//! Requests are answered one at a time on the calling thread: one user, one page, and the
//! memory of one decode at a time (`dataset::image_file`'s limits) at most.

pub mod models;

use std::io::{Cursor, Read};
use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response};

pub use models::{Loaded, LoadedGenerator};

/// The largest upload read: a phone photo fits; anything larger is refused unread.
pub const MAX_UPLOAD: usize = 16 << 20;
/// The most generated images one request may ask for.
const MAX_SAMPLES: usize = 64;

const PAGE: &str = include_str!("page.html");

/// The loaded models and generator.
pub struct Site {
    pub models: Vec<Loaded>,
    pub generator: Option<LoadedGenerator>,
}

type Reply = Response<Cursor<Vec<u8>>>;

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
    let header = Header::from_bytes("Content-Type", content_type).expect("a valid header");
    Response::from_data(body)
        .with_status_code(status)
        .with_header(header)
}

fn json_reply(status: u16, value: &Value) -> Reply {
    reply(status, "application/json", value.to_string().into_bytes())
}

fn error(status: u16, message: impl std::fmt::Display) -> Reply {
    json_reply(status, &json!({ "error": message.to_string() }))
}

fn png_reply(picture: Result<image::RgbImage>) -> Reply {
    let encoded = picture.and_then(|p| {
        let mut png = Vec::new();
        p.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map(|_| png)
            .context("encoding a PNG")
    });
    match encoded {
        Ok(png) => reply(200, "image/png", png),
        Err(e) => error(500, format!("{e:#}")),
    }
}

/// `key` of a query string such as `n=16&seed=3`, parsed; `default` when absent.
fn query<T: std::str::FromStr>(query: &str, key: &str, default: T) -> Result<T> {
    match query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
    {
        None => Ok(default),
        Some((_, v)) => v
            .parse()
            .map_err(|_| anyhow!("{key}={v}: not a valid number")),
    }
}

impl Site {
    fn models_json(&self) -> Value {
        json!({
            "models": self.models.iter().map(Loaded::info).collect::<Vec<_>>(),
            "generator": self.generator.as_ref().map(LoadedGenerator::info),
        })
    }

    /// Every model's answer for the uploaded `body`.
    fn predict(&mut self, body: &[u8]) -> Reply {
        if self.models.is_empty() {
            return error(404, "no classifier is loaded (start serve with --model)");
        }
        if body.is_empty() {
            return error(400, "the request has no image: send the file as the body");
        }
        // Written to a file so that the upload is read exactly as `predict` reads files,
        // with the same checks.
        let file = match tempfile::NamedTempFile::new().and_then(|mut f| {
            std::io::Write::write_all(&mut f, body)?;
            Ok(f)
        }) {
            Ok(f) => f,
            Err(e) => return error(500, format!("cannot store the upload: {e}")),
        };
        let mut results = Vec::new();
        for loaded in &mut self.models {
            match loaded.answer(file.path()) {
                Ok(mut answer) => {
                    answer["model"] = json!(loaded.name);
                    results.push(answer);
                }
                Err(e) => {
                    // The temporary file's name means nothing to the user.
                    let message = format!("{e:#}")
                        .replace(&file.path().display().to_string(), "the uploaded image");
                    return error(400, message);
                }
            }
        }
        json_reply(200, &json!({ "results": results }))
    }

    fn samples(&self, q: &str) -> Reply {
        let Some(generator) = &self.generator else {
            return error(404, "no generator is loaded (start serve with --generator)");
        };
        let count_and_seed =
            |q: &str| -> Result<(usize, u64)> { Ok((query(q, "n", 16)?, query(q, "seed", 0)?)) };
        match count_and_seed(q) {
            Ok((n, _)) if n == 0 || n > MAX_SAMPLES => {
                error(400, format!("n={n}: ask for 1 to {MAX_SAMPLES} images"))
            }
            Ok((n, seed)) => png_reply(generator.samples(n, seed)),
            Err(e) => error(400, e),
        }
    }

    fn walk(&self, q: &str) -> Reply {
        let Some(generator) = &self.generator else {
            return error(404, "no generator is loaded (start serve with --generator)");
        };
        let ends_and_t = |q: &str| -> Result<(u64, u64, f32)> {
            Ok((query(q, "a", 1)?, query(q, "b", 2)?, query(q, "t", 0.0)?))
        };
        match ends_and_t(q) {
            Ok((_, _, t)) if !(0.0..=1.0).contains(&t) => {
                error(400, format!("t={t}: must lie in [0, 1]"))
            }
            Ok((a, b, t)) => png_reply(generator.walk(a, b, t)),
            Err(e) => error(400, e),
        }
    }

    /// The answer to one request.
    pub fn handle(&mut self, request: &mut Request) -> Reply {
        let url = request.url().to_string();
        let (path, q) = url.split_once('?').unwrap_or((&url, ""));
        let method = request.method().clone();
        match (method, path) {
            (Method::Get, "/") => reply(200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec()),
            (Method::Get, "/api/models") => json_reply(200, &self.models_json()),
            (Method::Post, "/api/predict") => match read_body(request) {
                Ok(body) => self.predict(&body),
                Err(too_large) => too_large,
            },
            (Method::Get, "/api/samples") => self.samples(q),
            (Method::Get, "/api/walk") => self.walk(q),
            (_, "/" | "/api/models" | "/api/predict" | "/api/samples" | "/api/walk") => {
                error(405, format!("{path} does not take {}", request.method()))
            }
            _ => error(404, format!("{path}: no such page")),
        }
    }

    /// Serves on `addr` until the process is stopped, printing the address first
    /// (`port 0` picks a free port).
    pub fn serve(mut self, addr: SocketAddr) -> Result<()> {
        let server =
            tiny_http::Server::http(addr).map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
        let bound = server
            .server_addr()
            .to_ip()
            .context("the server has no IP address")?;
        println!("Serving on http://{bound}/ (Ctrl-C stops)");
        for mut request in server.incoming_requests() {
            let response = self.handle(&mut request);
            // A client that went away is not the server's problem.
            let _ = request.respond(response);
        }
        Ok(())
    }
}

/// The request's body, at most [`MAX_UPLOAD`] bytes; a 413 reply for a larger one.
fn read_body(request: &mut Request) -> std::result::Result<Vec<u8>, Reply> {
    let too_large = || {
        error(
            413,
            format!("the upload is larger than {} MiB", MAX_UPLOAD >> 20),
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_UPLOAD) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    match request
        .as_reader()
        .take(MAX_UPLOAD as u64 + 1)
        .read_to_end(&mut body)
    {
        Ok(_) if body.len() > MAX_UPLOAD => Err(too_large()),
        Ok(_) => Ok(body),
        Err(e) => Err(error(400, format!("cannot read the upload: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_parse_with_defaults_and_clear_errors() {
        assert_eq!(query("n=3&seed=9", "seed", 0u64).unwrap(), 9);
        assert_eq!(query("n=3", "seed", 7u64).unwrap(), 7);
        assert_eq!(query("", "t", 0.5f32).unwrap(), 0.5);
        let err = query::<usize>("n=lots", "n", 1).unwrap_err().to_string();
        assert!(err.contains("n=lots"), "{err}");
    }
}
