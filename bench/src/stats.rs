//! Medians and the A/B alternation every row uses.

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Runs `a` and `b` alternately `reps` times (A, B, A, B …) so that drift of the machine
/// (other jobs, thermal state, page cache) falls on both sides alike; returns every
/// measurement of each side. The first error ends the row.
pub fn alternate<A, B>(reps: usize, mut a: A, mut b: B) -> Result<(Vec<f64>, Vec<f64>), String>
where
    A: FnMut(usize) -> Result<f64, String>,
    B: FnMut(usize) -> Result<f64, String>,
{
    let mut xs = Vec::with_capacity(reps);
    let mut ys = Vec::with_capacity(reps);
    for rep in 0..reps {
        xs.push(a(rep)?);
        ys.push(b(rep)?);
    }
    Ok((xs, ys))
}

/// `values` as a short list for the notes, e.g. `[1.02, 0.98, 1.01]`.
pub fn list(values: &[f64], digits: usize) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v:.digits$}")).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn alternate_interleaves_and_stops_at_the_first_error() {
        let order = std::cell::RefCell::new(Vec::new());
        let (a, b) = alternate(
            3,
            |i| {
                order.borrow_mut().push(('a', i));
                Ok(i as f64)
            },
            |i| {
                order.borrow_mut().push(('b', i));
                Ok(10.0 + i as f64)
            },
        )
        .unwrap();
        assert_eq!(a, vec![0.0, 1.0, 2.0]);
        assert_eq!(b, vec![10.0, 11.0, 12.0]);
        assert_eq!(order.borrow()[..3], [('a', 0), ('b', 0), ('a', 1)]);
        let failed = alternate(
            3,
            |_| Ok(1.0),
            |i| if i == 1 { Err("x".into()) } else { Ok(2.0) },
        );
        assert_eq!(failed, Err("x".to_string()));
    }
}
