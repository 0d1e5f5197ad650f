//! SQL92 message filters: RocketMQ's selector language (`filter/` module of
//! apache/rocketmq 5.3.3, a superset of 4.9.x's with CONTAINS / STARTSWITH /
//! ENDSWITH) evaluated on message properties. Pure: no I/O.
//!
//! [`compile`] parses an expression as `SelectorParser.parse` does (the same
//! inputs are accepted and refused); [`Selector::matches`] is
//! `ExpressionMessageFilter.isMatchedByCommitLog`: true only when the
//! expression evaluates to TRUE, so an unknown result (a missing property)
//! or an evaluation error does not match.

mod eval;
mod lexer;
mod parser;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub use eval::{EvalError, Properties};
pub use parser::Expr;

/// `ExpressionType.SQL92`.
pub const SQL92: &str = "SQL92";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("Invalid MessageSelector. {0}")]
    Parse(String),
    #[error("unsupported expression type {0:?}")]
    UnsupportedType(String),
}

/// `ExpressionType.isTagType`: empty or exactly `TAG` (case matters in Java).
pub fn is_tag_type(expression_type: &str) -> bool {
    expression_type.is_empty() || expression_type == "TAG"
}

/// A compiled SQL92 expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    /// Three-valued result: `Ok(None)` is unknown.
    pub fn evaluate<P: Properties + ?Sized>(&self, props: &P) -> Result<Option<bool>, EvalError> {
        Ok(match eval::evaluate(&self.expr, props)? {
            eval::Value::Bool(b) => Some(b),
            _ => None,
        })
    }

    /// Whether a message with these properties is delivered.
    pub fn matches<P: Properties + ?Sized>(&self, props: &P) -> bool {
        matches!(self.evaluate(props), Ok(Some(true)))
    }
}

/// Parses `expression` of `expression_type` (only `SQL92` compiles).
pub fn compile(expression_type: &str, expression: &str) -> Result<Selector, FilterError> {
    if expression_type != SQL92 {
        return Err(FilterError::UnsupportedType(expression_type.to_owned()));
    }
    Ok(Selector {
        expr: parser::Parser::new(expression).selector()?,
    })
}

type Compiled = Result<Arc<Selector>, FilterError>;

/// Entries kept before the cache starts over (Java's parse cache holds 100).
const CACHE_MAX: usize = 4096;

/// [`compile`] through a process-wide cache. The compiled form depends only
/// on the type and the text, so consumers of any group or topic sharing an
/// expression share one entry; a group that changes its expression gets a
/// new key. Parse failures are cached too, as Java does.
pub fn compile_cached(expression_type: &str, expression: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (expression_type.to_owned(), expression.to_owned());
    if let Some(hit) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return hit.clone();
    }
    let compiled = compile(expression_type, expression).map(Arc::new);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if c.len() >= CACHE_MAX {
        c.clear();
    }
    c.insert(key, compiled.clone());
    compiled
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Three-valued result of `sql` on `pairs`; panics on a parse error.
    fn eval(sql: &str, pairs: &[(&str, &str)]) -> Result<Option<bool>, EvalError> {
        compile(SQL92, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .evaluate(&props(pairs))
    }

    fn t(sql: &str, pairs: &[(&str, &str)]) {
        assert_eq!(eval(sql, pairs), Ok(Some(true)), "{sql} on {pairs:?}");
    }
    fn f(sql: &str, pairs: &[(&str, &str)]) {
        assert_eq!(eval(sql, pairs), Ok(Some(false)), "{sql} on {pairs:?}");
    }
    fn unknown(sql: &str, pairs: &[(&str, &str)]) {
        assert_eq!(eval(sql, pairs), Ok(None), "{sql} on {pairs:?}");
    }
    fn fails(sql: &str, pairs: &[(&str, &str)]) {
        assert!(eval(sql, pairs).is_err(), "{sql} on {pairs:?} should fail");
        assert!(!compile(SQL92, sql).unwrap().matches(&props(pairs)));
    }
    fn bad(sql: &str) {
        let e = compile(SQL92, sql).expect_err(sql);
        assert!(e.to_string().starts_with("Invalid MessageSelector."), "{e}");
    }

    #[test]
    fn comparisons_convert_property_strings_like_java() {
        let a = [("a", "5")];
        t("a = 5", &a);
        f("a = 6", &a);
        t("a <> 6", &a);
        f("a <> 5", &a);
        t("a > 4", &a);
        f("a > 5", &a);
        t("a >= 5", &a);
        t("a < 6", &a);
        f("a < 5", &a);
        t("a <= 5", &a);
        // Integer.valueOf accepts a sign and leading zeros, not spaces or decimals.
        t("a = 5", &[("a", "+05")]);
        fails("a = 5", &[("a", " 5")]);
        fails("a = 5", &[("a", "5.0")]);
        fails("a > 5", &[("a", "abc")]);
        // Beyond int: the literal is a Long only when it does not fit.
        fails("a > 5", &[("a", "3000000000")]);
        t("a > 2147483648", &[("a", "3000000000")]);
        // Against a double literal the property is parsed as a double.
        t("a > 4.5", &a);
        t("a > 4.5", &[("a", " 5e0 ")]);
        t("a = 5.0", &a);
        t("a > 1.5", &[("a", "2d")]);
        t("a > 1.5", &[("a", "Infinity")]);
        t("a > 1.5", &[("a", "NaN")]);
        fails("a > 1.5", &[("a", "inf")]);
        // Two properties with an ordering: both parsed as doubles.
        t("a < b", &[("a", "9"), ("b", "10")]);
        fails("a < b", &[("a", "x"), ("b", "10")]);
        // ...but `=` compares them as strings.
        f("a = b", &[("a", "1"), ("b", "1.0")]);
        t("a = b", &[("a", "x"), ("b", "x")]);
        // Strings.
        t("color = 'red'", &[("color", "red")]);
        f("color = 'red'", &[("color", "Red")]);
        t("color <> 'red'", &[("color", "blue")]);
        // Booleans: the property goes through Boolean.valueOf.
        t("flag = TRUE", &[("flag", "TRUE")]);
        t("flag = FALSE", &[("flag", "yes")]);
        fails("TRUE = flag", &[("flag", "true")]);
        // Mixed number types.
        t("2147483648 > 1", &[]);
        t("1 = 1.0", &[]);
        f("1 = TRUE", &[]);
        t("-5 < -4.5", &[]);
        t("- -3 = 3", &[]);
    }

    #[test]
    fn three_valued_logic() {
        let none: [(&str, &str); 0] = [];
        unknown("a = 5", &none);
        unknown("a <> 5", &none);
        unknown("a > 5", &none);
        unknown("NOT (a > 5)", &none);
        unknown("a BETWEEN 1 AND 3", &none);
        unknown("a IN ('x')", &none);
        unknown("a NOT IN ('x')", &none);
        // Literal on the left, missing property on the right: FALSE, not unknown.
        f("5 = a", &none);
        unknown("5 < a", &none);
        // AND / OR truth tables with unknown.
        f("a = 1 AND FALSE", &none);
        unknown("a = 1 AND TRUE", &none);
        t("a = 1 OR TRUE", &none);
        unknown("a = 1 OR FALSE", &none);
        unknown("a = 1 OR a = 2", &none);
        t("TRUE AND TRUE", &none);
        f("FALSE OR FALSE", &none);
        // Short circuit: the failing right side is not evaluated.
        f("FALSE AND a > 1", &[("a", "x")]);
        fails("TRUE AND a > 1", &[("a", "x")]);
        // IS [NOT] NULL.
        t("a IS NULL", &none);
        f("a IS NULL", &[("a", "1")]);
        t("a IS NOT NULL", &[("a", "1")]);
        f("a IS NOT NULL", &none);
        // Two missing properties are equal.
        t("a = b", &none);
        // CONTAINS and friends are FALSE on a missing property, even negated.
        f("a CONTAINS 'x'", &none);
        f("a NOT CONTAINS 'x'", &none);
        // A bare property is a boolean cast: FALSE for any string, unknown if missing.
        f("a", &[("a", "true")]);
        unknown("a", &none);
        unknown("NULL", &none);
        // Unknown does not match.
        assert!(!compile(SQL92, "a = 1").unwrap().matches(&props(&[])));
    }

    #[test]
    fn between_in_and_string_operators() {
        let four = [("a", "4")];
        t("a BETWEEN 3 AND 5", &four);
        t("a BETWEEN 4 AND 4", &four);
        f("a BETWEEN 5 AND 9", &four);
        t("a NOT BETWEEN 5 AND 9", &four);
        f("a NOT BETWEEN 3 AND 5", &four);
        t("a BETWEEN -1 AND 4.5", &four);
        t("a IN ('4', '5')", &four);
        f("a IN ('5')", &four);
        t("a NOT IN ('5', '6', '7', '8', '9')", &four);
        // IN compares strings exactly.
        f("a IN ('04')", &four);
        t("(a) IN ('4')", &four);
        let s = [("s", "hello world")];
        t("s CONTAINS 'lo w'", &s);
        f("s CONTAINS 'xyz'", &s);
        t("s NOT CONTAINS 'xyz'", &s);
        t("s STARTSWITH 'hell'", &s);
        f("s NOT STARTSWITH 'hell'", &s);
        t("s ENDSWITH 'world'", &s);
        t("s NOT ENDSWITH 'hello'", &s);
        // An empty search string never matches.
        f("s CONTAINS ''", &s);
        f("s NOT CONTAINS ''", &s);
        // Unicode property values.
        t("s = '中文🙂'", &[("s", "中文🙂")]);
        t("s STARTSWITH '中'", &[("s", "中文🙂")]);
    }

    #[test]
    fn precedence_and_associativity() {
        // AND binds tighter than OR.
        t("TRUE OR FALSE AND FALSE", &[]);
        f("(TRUE OR FALSE) AND FALSE", &[]);
        // Comparisons bind tighter than AND; BETWEEN's AND belongs to BETWEEN.
        t("a BETWEEN 1 AND 3 AND b = 'x'", &[("a", "2"), ("b", "x")]);
        f("a BETWEEN 1 AND 3 AND b = 'x'", &[("a", "2"), ("b", "y")]);
        // NOT applies to the unary operand: `NOT a = 1` is `(NOT a) = 1`.
        f("NOT a = 1", &[("a", "2")]);
        t("NOT (a = 1)", &[("a", "2")]);
        t("NOT (a < 5)", &[("a", "5")]);
        t("NOT NOT TRUE", &[]);
        // `=` chains left to right on booleans.
        t("a = 1 = TRUE", &[("a", "1")]);
        // Keywords are case-insensitive, property names are not.
        t("A = 1 and a is null", &[("A", "1")]);
        // Comments and line breaks.
        t("a = 1 /* c */ AND -- c\n b = 2", &[("a", "1"), ("b", "2")]);
    }

    #[test]
    fn literals() {
        t("s = 'it''s'", &[("s", "it's")]);
        t("s = ''''", &[("s", "'")]);
        t("n = 10L", &[("n", "10")]);
        t("n = 9223372036854775807", &[("n", "9223372036854775807")]);
        bad("n = 9223372036854775808");
        t("n = -9223372036854775807", &[("n", "-9223372036854775807")]);
        t("n > 1.", &[("n", "2")]);
        t("n < .5", &[("n", "0.25")]);
        t("n > 5E2", &[("n", "501")]);
        t("n < 1.5e-3", &[("n", "0.001")]);
        // Java rejects float literals that are zero or infinite.
        bad("n > 0.0");
        bad("n > 1e-400");
        bad("n > 1e400");
        t("n > 0", &[("n", "1")]);
        t("$x_1 = 1", &[("$x_1", "1")]);
        t("TAGS = 'TagA'", &[("TAGS", "TagA")]);
        t("+1 = 1", &[]);
    }

    #[test]
    fn parse_errors() {
        for sql in [
            "",
            "   ",
            "a =",
            "a = = 1",
            "(a = 1",
            "a IN ()",
            "a IN (1, 2)",
            "a IN 'x'",
            "'x' IN ('x')",
            "a BETWEEN 1",
            "a BETWEEN 5 AND 1",
            "a BETWEEN 'a' AND 'b'",
            "a BETWEEN NULL AND 1",
            "a BETWEEN TRUE AND 1",
            "a > 'x'",
            "a > TRUE",
            "(a > 1) > 2",
            "a = NULL",
            "NULL = a",
            "TRUE = 1",
            "a IS 5",
            "a IS NOT 5",
            "a NOT 5",
            "a CONTAINS b",
            "5",
            "'x'",
            "-a",
            "NOT 5",
            "a != 1",
            "a.b = 1",
            "a = 'open",
            "a = 1 OR",
            "a = 1 AND /* open",
            // NOT binds to the operand, and IN needs a bare property.
            "NOT a IN ('x')",
        ] {
            bad(sql);
        }
        let e = compile(SQL92, "a = = 1").unwrap_err().to_string();
        assert!(e.contains("column 5"), "{e}");
    }

    #[test]
    fn trailing_input_is_not_read_like_java() {
        // JavaCC stops after one expression and peeks one token.
        t("a = 1 b = 2", &[("a", "1")]);
        t("a = 1)", &[("a", "1")]);
        t("a = 1.5f", &[("a", "1.5")]);
        t("a = 1 --", &[("a", "1")]);
        // ... but the peeked token must lex.
        bad("a = 1 !");
    }

    #[test]
    fn types_and_cache() {
        assert!(is_tag_type(""));
        assert!(is_tag_type("TAG"));
        assert!(!is_tag_type("tag"));
        assert!(!is_tag_type("SQL92"));
        assert_eq!(
            compile("sql92", "a = 1"),
            Err(FilterError::UnsupportedType("sql92".into()))
        );
        let a = compile_cached(SQL92, "a = 1").unwrap();
        let b = compile_cached(SQL92, "a = 1").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(compile_cached(SQL92, "a =").is_err());
        assert!(compile_cached(SQL92, "a =").is_err());
    }

    #[test]
    fn raw_stored_properties() {
        let raw = "a\u{1}7\u{2}color\u{1}red\u{2}a\u{1}8\u{2}empty\u{1}\u{2}";
        let s = compile(SQL92, "color = 'red' AND a > 7 AND empty IS NULL").unwrap();
        // The last duplicate wins and empty values are absent, as in Java's map.
        assert!(s.matches(raw));
    }

    #[test]
    fn java_double_parsing() {
        use eval::java_double;
        assert_eq!(java_double("1"), Ok(1.0));
        assert_eq!(java_double(" -1.5e1 "), Ok(-15.0));
        assert_eq!(java_double("1."), Ok(1.0));
        assert_eq!(java_double(".5F"), Ok(0.5));
        assert_eq!(java_double("-Infinity"), Ok(f64::NEG_INFINITY));
        assert!(java_double("NaN").unwrap().is_nan());
        for s in [
            "", ".", "e5", "1e", "1e+", "inf", "nan", "0x10", "1,5", "1 5", "++1",
        ] {
            assert!(java_double(s).is_err(), "{s}");
        }
    }
}
