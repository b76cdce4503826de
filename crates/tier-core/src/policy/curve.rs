//! Piecewise-linear normalisation curves: indicator value -> points 0..=100.
//!
//! A curve is a list of `(value, points)` knots with strictly increasing
//! values; between knots points are interpolated linearly, outside them the
//! end points hold (capped at both ends). Slopes are computed once at load.
//!
//! Monotonicity is exact, not just up to rounding: within a segment the
//! interpolation `y0 + (v - x0) * slope` is a chain of monotone IEEE
//! operations, and each result is clamped into the segment's `[y0, y1]`
//! range, so a curve whose knots are monotone never steps backwards at a
//! knot because of a rounding error. The property tests rely on this.

/// One linear piece, `x0 <= v < x1`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Segment {
    x0: f64,
    y0: f64,
    x1: f64,
    slope: f64,
    lo: f64,
    hi: f64,
}

/// A validated curve (see `parse.rs` for the checks).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Curve {
    knots: Vec<(f64, f64)>,
    segments: Vec<Segment>,
    first_x: f64,
    first_y: f64,
    last_y: f64,
    /// Points given to a NaN input: the lowest points of the curve.
    worst: f64,
}

impl Curve {
    /// Build from knots already checked to be finite, at least two, with
    /// strictly increasing x. Never panics; degenerate input gives a
    /// constant curve.
    pub(crate) fn new(knots: &[(f64, f64)]) -> Self {
        let segments = knots
            .windows(2)
            .map(|w| {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                Segment {
                    x0,
                    y0,
                    x1,
                    slope: (y1 - y0) / (x1 - x0),
                    lo: y0.min(y1),
                    hi: y0.max(y1),
                }
            })
            .collect();
        let (first_x, first_y) = knots.first().copied().unwrap_or((0.0, 0.0));
        let last_y = knots.last().map_or(first_y, |k| k.1);
        let worst = knots.iter().map(|k| k.1).fold(f64::INFINITY, f64::min);
        Self {
            knots: knots.to_vec(),
            segments,
            first_x,
            first_y,
            last_y,
            worst: if worst.is_finite() { worst } else { 0.0 },
        }
    }

    /// Points at `v`. Allocation-free; a handful of comparisons.
    #[inline]
    pub(crate) fn at(&self, v: f64) -> f64 {
        if v.is_nan() {
            return self.worst;
        }
        if v <= self.first_x {
            return self.first_y;
        }
        for s in &self.segments {
            if v < s.x1 {
                return (s.y0 + (v - s.x0) * s.slope).clamp(s.lo, s.hi);
            }
        }
        self.last_y
    }

    /// The `(value, points)` knots, values strictly increasing.
    pub(crate) fn knots(&self) -> &[(f64, f64)] {
        &self.knots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_and_caps_at_both_ends() {
        let c = Curve::new(&[(0.0, 0.0), (10.0, 50.0), (20.0, 100.0)]);
        assert_eq!(c.at(-5.0), 0.0);
        assert_eq!(c.at(0.0), 0.0);
        assert_eq!(c.at(5.0), 25.0);
        assert_eq!(c.at(10.0), 50.0);
        assert_eq!(c.at(15.0), 75.0);
        assert_eq!(c.at(20.0), 100.0);
        assert_eq!(c.at(1e300), 100.0);
        assert_eq!(c.at(f64::NAN), 0.0);
    }

    #[test]
    fn falling_curves() {
        let c = Curve::new(&[(0.0, 100.0), (7.0, 70.0), (30.0, 20.0), (90.0, 0.0)]);
        assert_eq!(c.at(0.0), 100.0);
        assert_eq!(c.at(3.5), 85.0);
        assert_eq!(c.at(7.0), 70.0);
        assert_eq!(c.at(200.0), 0.0);
        assert_eq!(c.at(f64::NAN), 0.0);
        assert_eq!(c.knots().len(), 4);
    }

    #[test]
    fn never_steps_back_at_a_knot() {
        // Awkward slopes: the interpolated value just below a knot must not
        // exceed the knot's points.
        let c = Curve::new(&[(0.0, 0.0), (0.3, 33.3), (0.7, 66.7), (1.1, 100.0)]);
        let mut prev = c.at(-1.0);
        let mut v = -0.01;
        while v < 1.2 {
            let p = c.at(v);
            assert!(p >= prev, "{v}: {p} < {prev}");
            prev = p;
            v += 0.000_37;
        }
        for x in [0.3_f64, 0.7, 1.1] {
            assert!(c.at(x.next_down()) <= c.at(x));
        }
        // Found by search: without the clamp, the value one ulp below the
        // second knot rounds above the knot's points.
        let (x1, y1) = (884.107_345_961_870_8, 63.169_998_782_368_204);
        let c = Curve::new(&[
            (74.913_445_521_590_29, 31.513_814_358_550_142),
            (x1, y1),
            (1000.0, 100.0),
        ]);
        assert!(c.at(x1.next_down()) <= y1);
        assert_eq!(c.at(x1), y1);
    }
}
