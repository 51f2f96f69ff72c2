//! Perceptron logic gates: y = 1 if w1·x1 + w2·x2 > θ else 0.

/// A two-input perceptron with weights and a threshold.
#[derive(Debug, Clone, Copy)]
pub struct Perceptron {
    pub w: [f64; 2],
    pub theta: f64,
}

impl Perceptron {
    pub fn fire(&self, x: [u8; 2]) -> u8 {
        let sum = self.w[0] * x[0] as f64 + self.w[1] * x[1] as f64;
        u8::from(sum > self.theta)
    }
}

/// The course's weights and thresholds.
pub const AND: Perceptron = Perceptron {
    w: [0.5, 0.5],
    theta: 0.7,
};
pub const OR: Perceptron = Perceptron {
    w: [0.7, 0.7],
    theta: 0.5,
};
/// NAND is AND with every sign flipped.
pub const NAND: Perceptron = Perceptron {
    w: [-0.5, -0.5],
    theta: -0.7,
};

/// XOR cannot be one perceptron; two layers can: AND(NAND(x), OR(x)).
pub fn xor(x: [u8; 2]) -> u8 {
    AND.fire([NAND.fire(x), OR.fire(x)])
}

pub const INPUTS: [[u8; 2]; 4] = [[0, 0], [1, 0], [0, 1], [1, 1]];

/// The four truth tables, as printed by `scratch gates`.
/// A named two-input gate.
type Gate<'a> = (&'a str, &'a dyn Fn([u8; 2]) -> u8);

pub fn truth_tables() -> String {
    let gates: [Gate; 4] = [
        ("AND  (w = 0.5, 0.5; θ = 0.7)", &|x| AND.fire(x)),
        ("OR   (w = 0.7, 0.7; θ = 0.5)", &|x| OR.fire(x)),
        ("NAND (w = -0.5, -0.5; θ = -0.7)", &|x| NAND.fire(x)),
        ("XOR  = AND(NAND(x1, x2), OR(x1, x2))", &xor),
    ];
    let mut out = String::new();
    for (name, gate) in gates {
        out.push_str(&format!("{name}\n x1 x2 | y\n"));
        for x in INPUTS {
            out.push_str(&format!("  {}  {} | {}\n", x[0], x[1], gate(x)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(f: impl Fn([u8; 2]) -> u8) -> [u8; 4] {
        INPUTS.map(f)
    }

    #[test]
    fn gates_have_their_truth_tables() {
        assert_eq!(table(|x| AND.fire(x)), [0, 0, 0, 1]);
        assert_eq!(table(|x| OR.fire(x)), [0, 1, 1, 1]);
        assert_eq!(table(|x| NAND.fire(x)), [1, 1, 1, 0]);
        assert_eq!(table(xor), [0, 1, 1, 0]);
    }
}
