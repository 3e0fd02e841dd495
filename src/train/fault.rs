//! Numerical faults (§6): a tensor that turns non-finite (exp overflow in
//! the encoder or the modulation, a diverging learning rate) or a gain
//! that is all zero is detected where it arises; the run then ends as
//! failed with the step and the tensor named, never as a curve of NaN.

use serde::{Deserialize, Serialize};

use crate::net::linalg::first_non_finite;
use crate::net::{Model, Workspace};

/// What went wrong in one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// The tensor, e.g. `activity of layer 1`.
    pub tensor: String,
    /// What is wrong with it, e.g. `is NaN at index 17`.
    pub problem: String,
}

/// How a run failed, as its record keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Where in the run: `update 12 of 250`, `measurement after update
    /// 12`, or for the `dataset` protocol the size and epoch as well.
    pub at: String,
    /// The tensor at fault.
    pub tensor: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Failure {
    /// `fault`, which arose `at`.
    pub fn new(at: impl Into<String>, fault: Fault) -> Failure {
        Failure {
            at: at.into(),
            tensor: fault.tensor,
            problem: fault.problem,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}", self.at, self.tensor, self.problem)
    }
}

/// `problem` for a non-finite `value` at `index`.
pub fn non_finite(value: f64, index: usize) -> String {
    let what = if value.is_nan() { "NaN" } else { "infinite" };
    format!("is {what} at index {index}")
}

/// Fails when `values` of `tensor` hold a non-finite number.
pub fn check_finite(tensor: &str, values: &[f32]) -> Result<(), Fault> {
    match first_non_finite(values) {
        None => Ok(()),
        Some(i) => Err(Fault {
            tensor: tensor.to_string(),
            problem: non_finite(values[i] as f64, i),
        }),
    }
}

/// The first tensor of the last forward pass in `ws` that holds a
/// non-finite value ([`Model::first_non_finite`]), as a fault.
pub fn forward_fault(model: &Model<f32>, ws: &Workspace<f32>) -> Option<Fault> {
    model
        .first_non_finite(ws)
        .map(|(tensor, index, value)| Fault {
            tensor,
            problem: non_finite(value, index),
        })
}

/// Fails when a scalar such as a loss is not finite.
pub fn check_scalar(tensor: &str, value: f64) -> Result<(), Fault> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Fault {
            tensor: tensor.to_string(),
            problem: non_finite(value, 0).replace(" at index 0", ""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_non_finite_value() {
        assert!(check_finite("c", &[1.0, 2.0]).is_ok());
        let fault = check_finite("c", &[1.0, f32::INFINITY, f32::NAN]).unwrap_err();
        assert_eq!(fault.problem, "is infinite at index 1");
        let fault = check_scalar("loss", f64::NAN).unwrap_err();
        assert_eq!(
            (fault.tensor.as_str(), fault.problem.as_str()),
            ("loss", "is NaN")
        );
        let failure = Failure::new("update 3 of 9", fault);
        assert_eq!(failure.to_string(), "update 3 of 9: loss is NaN");
    }
}
