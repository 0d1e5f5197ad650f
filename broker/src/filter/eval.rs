//! Evaluation with Java's values and three-valued logic
//! (`ComparisonExpression`, `LogicExpression`, `UnaryExpression`).
//!
//! Properties are strings; literals are Integer, Long, Double, String or
//! Boolean. Mixed comparisons convert like `ComparisonExpression.__compare`
//! with string conversion on (a property compared with `7` is parsed as a
//! Java int). Where Java throws (a string that is not a number, a cast that
//! fails) evaluation fails and the message does not match, as in
//! `ExpressionMessageFilter`.

use std::cmp::Ordering as CmpOrdering;

use super::parser::{Expr, Ordering, StrOp};

/// A Java value during evaluation; `Null` is SQL's unknown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(&'a str),
}

/// Why Java would have thrown while evaluating.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("not a number: {0:?}")]
    NumberFormat(String),
    #[error("a boolean cannot be compared with a string")]
    ClassCast,
}

/// What a message offers the expression.
pub trait Properties {
    fn property(&self, name: &str) -> Option<&str>;
}

/// The stored `name\u1value\u2...` string (last duplicate wins, like Java's map).
impl Properties for str {
    fn property(&self, name: &str) -> Option<&str> {
        store::properties::get(self, name)
    }
}

impl<S: std::hash::BuildHasher> Properties for std::collections::HashMap<String, String, S> {
    fn property(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// `Integer.valueOf` / `Long.valueOf` (ASCII digits, optional sign).
fn java_int<T: std::str::FromStr>(s: &str) -> Result<T, EvalError> {
    s.parse().map_err(|_| EvalError::NumberFormat(s.to_owned()))
}

/// `Double.valueOf`: surrounding whitespace trimmed, optional sign, `NaN`,
/// `Infinity`, or a decimal with optional exponent and `f`/`d` suffix.
/// Hexadecimal floating literals are not supported.
pub(crate) fn java_double(s: &str) -> Result<f64, EvalError> {
    let bad = || EvalError::NumberFormat(s.to_owned());
    let t = s.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let v = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let num = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
            let (mantissa, exponent) = match num.find(['e', 'E']) {
                Some(i) => (&num[..i], Some(&num[i + 1..])),
                None => (num, None),
            };
            let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            let digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
            if !digits(int) || !digits(frac) || int.len() + frac.len() == 0 {
                return Err(bad());
            }
            if let Some(e) = exponent {
                let e = e.strip_prefix(['+', '-']).unwrap_or(e);
                if e.is_empty() || !digits(e) {
                    return Err(bad());
                }
            }
            num.parse::<f64>().map_err(|_| bad())?
        }
    };
    Ok(if negative { -v } else { v })
}

/// `Double.compare`: NaN above everything, -0.0 below 0.0.
fn java_double_cmp(a: f64, b: f64) -> i32 {
    if a < b {
        return -1;
    }
    if a > b {
        return 1;
    }
    let bits = |x: f64| {
        if x.is_nan() {
            0x7ff8_0000_0000_0000_i64
        } else {
            x.to_bits() as i64
        }
    };
    match bits(a).cmp(&bits(b)) {
        CmpOrdering::Less => -1,
        CmpOrdering::Equal => 0,
        CmpOrdering::Greater => 1,
    }
}

fn sign(o: CmpOrdering) -> i32 {
    o as i32
}

/// `ComparisonExpression.__compare(lv, rv, true)`: converts the left or
/// right side to the other's type; unrelated types compare as "less".
pub(crate) fn java_compare(lv: Value<'_>, rv: Value<'_>) -> Result<i32, EvalError> {
    use Value::*;
    Ok(match (lv, rv) {
        (Bool(a), Bool(b)) => sign(a.cmp(&b)),
        (Int(a), Int(b)) => sign(a.cmp(&b)),
        (Long(a), Long(b)) => sign(a.cmp(&b)),
        (Double(a), Double(b)) => java_double_cmp(a, b),
        // String.compareTo: UTF-16 code units.
        (Str(a), Str(b)) => sign(a.encode_utf16().cmp(b.encode_utf16())),
        // Java casts the Boolean to String here and throws.
        (Bool(_), Str(_)) => return Err(EvalError::ClassCast),
        (Int(a), Long(b)) => sign(i64::from(a).cmp(&b)),
        (Int(a), Double(b)) => java_double_cmp(f64::from(a), b),
        (Int(a), Str(b)) => sign(a.cmp(&java_int::<i32>(b)?)),
        (Long(a), Int(b)) => sign(a.cmp(&i64::from(b))),
        (Long(a), Double(b)) => java_double_cmp(a as f64, b),
        (Long(a), Str(b)) => sign(a.cmp(&java_int::<i64>(b)?)),
        (Double(a), Int(b)) => java_double_cmp(a, f64::from(b)),
        (Double(a), Long(b)) => java_double_cmp(a, b as f64),
        (Double(a), Str(b)) => java_double_cmp(a, java_double(b)?),
        (Str(a), Bool(b)) => sign(a.eq_ignore_ascii_case("true").cmp(&b)),
        (Str(a), Int(b)) => sign(java_int::<i32>(a)?.cmp(&b)),
        (Str(a), Long(b)) => sign(java_int::<i64>(a)?.cmp(&b)),
        (Str(a), Double(b)) => java_double_cmp(java_double(a)?, b),
        _ => -1,
    })
}

/// `Object.equals` between two Java values.
fn java_equals(a: Value<'_>, b: Value<'_>) -> bool {
    use Value::*;
    match (a, b) {
        (Bool(a), Bool(b)) => a == b,
        (Int(a), Int(b)) => a == b,
        (Long(a), Long(b)) => a == b,
        (Double(a), Double(b)) => java_double_cmp(a, b) == 0,
        (Str(a), Str(b)) => a == b,
        _ => false,
    }
}

fn as_bool(v: Value<'_>) -> Result<Option<bool>, EvalError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        // `(Boolean) value` in Java; the parser never builds this.
        _ => Err(EvalError::ClassCast),
    }
}

fn tri(b: Option<bool>) -> Value<'static> {
    b.map_or(Value::Null, Value::Bool)
}

pub(crate) fn evaluate<'a, P: Properties + ?Sized>(
    e: &'a Expr,
    props: &'a P,
) -> Result<Value<'a>, EvalError> {
    Ok(match e {
        Expr::Literal(l) => l.value(),
        Expr::Property(name) => props.property(name).map_or(Value::Null, Value::Str),
        Expr::Negate(inner) => match evaluate(inner, props)? {
            Value::Int(i) => Value::Int(i.wrapping_neg()),
            Value::Long(l) => Value::Long(l.wrapping_neg()),
            Value::Double(d) => Value::Double(-d),
            _ => Value::Null,
        },
        Expr::Not(inner) => tri(as_bool(evaluate(inner, props)?)?.map(|b| !b)),
        Expr::BoolCast(inner) => match evaluate(inner, props)? {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            _ => Value::Bool(false),
        },
        Expr::And(l, r) => {
            let lv = as_bool(evaluate(l, props)?)?;
            if lv == Some(false) {
                return Ok(Value::Bool(false));
            }
            let rv = as_bool(evaluate(r, props)?)?;
            if rv == Some(false) {
                return Ok(Value::Bool(false));
            }
            tri(lv.and(rv).map(|_| true))
        }
        Expr::Or(l, r) => {
            let lv = as_bool(evaluate(l, props)?)?;
            if lv == Some(true) {
                return Ok(Value::Bool(true));
            }
            let rv = as_bool(evaluate(r, props)?)?;
            if rv == Some(true) {
                return Ok(Value::Bool(true));
            }
            tri(lv.and(rv).map(|_| false))
        }
        Expr::Equal(l, r) => {
            let lv = evaluate(l, props)?;
            let rv = evaluate(r, props)?;
            match (lv, rv) {
                (Value::Null, Value::Null) => Value::Bool(true),
                (Value::Null, _) => Value::Null,
                (_, Value::Null) => Value::Bool(false),
                (a, b) if java_equals(a, b) => Value::Bool(true),
                (a, b) => Value::Bool(java_compare(a, b)? == 0),
            }
        }
        Expr::Compare(op, l, r) => {
            let lv = evaluate(l, props)?;
            if lv == Value::Null {
                return Ok(Value::Null);
            }
            let rv = evaluate(r, props)?;
            if rv == Value::Null {
                return Ok(Value::Null);
            }
            // Two strings (two properties) are compared as doubles.
            let c = match (lv, rv) {
                (Value::Str(a), Value::Str(b)) => java_double_cmp(java_double(a)?, java_double(b)?),
                (a, b) => java_compare(a, b)?,
            };
            Value::Bool(match op {
                Ordering::Gt => c > 0,
                Ordering::Ge => c >= 0,
                Ordering::Lt => c < 0,
                Ordering::Le => c <= 0,
            })
        }
        Expr::In {
            property,
            values,
            not,
        } => match props.property(property) {
            None => Value::Null,
            Some(v) => Value::Bool(values.iter().any(|x| x == v) ^ not),
        },
        Expr::Str {
            op,
            not,
            operand,
            search,
        } => {
            if search.is_empty() {
                return Ok(Value::Bool(false));
            }
            match evaluate(operand, props)? {
                // Unknown or not a string: false, even with NOT.
                Value::Str(s) => {
                    let hit = match op {
                        StrOp::Contains => s.contains(search.as_str()),
                        StrOp::StartsWith => s.starts_with(search.as_str()),
                        StrOp::EndsWith => s.ends_with(search.as_str()),
                    };
                    Value::Bool(hit ^ not)
                }
                _ => Value::Bool(false),
            }
        }
    })
}
