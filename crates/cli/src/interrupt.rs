//! Ctrl-C, one mechanism for every command: a press asks the running work to stop at its
//! next safe point (what is done so far saved); the command then returns [`Interrupted`]
//! and `main` exits with status 130, as a shell expects of an interrupted program.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
/// Called on a press, besides setting the flag (burn-train's own interrupter).
static LISTENERS: Mutex<Vec<Box<dyn Fn() + Send>>> = Mutex::new(Vec::new());

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            REQUESTED.store(true, Ordering::Relaxed);
            if let Ok(listeners) = LISTENERS.lock() {
                listeners.iter().for_each(|f| f());
            }
        });
        if let Err(e) = installed {
            eprintln!("warning: Ctrl-C will stop the process at once: {e}");
        }
    });
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// The flag a press sets, with the handler installed: for library loops that take a stop
/// flag (so that their tests can set one of their own).
pub fn flag() -> &'static AtomicBool {
    install();
    &REQUESTED
}

/// Also runs `f` on a press (for work that has its own stop signal).
pub fn on_request(f: impl Fn() + Send + 'static) {
    install();
    if let Ok(mut listeners) = LISTENERS.lock() {
        listeners.push(Box::new(f));
    }
}

/// A command stopped by Ctrl-C; the message says what was kept.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted: {}", self.0)
    }
}

impl std::error::Error for Interrupted {}
