//! Recursive descent over RocketMQ's selector grammar, building the
//! expression tree with the checks Java's factory methods make
//! (`ComparisonExpression.create*`, `SelectorParser.asBooleanExpression`);
//! a failed check is a parse error, as in Java.
//!
//! ```text
//! selector   := or                       (tokens after it are not read)
//! or         := and (OR and)*
//! and        := equality (AND equality)*
//! equality   := comparison ( '=' comparison | '<>' comparison
//!                          | IS NULL | IS NOT NULL )*
//! comparison := unary ( ('>'|'>='|'<'|'<=') unary
//!                     | [NOT] (CONTAINS|STARTSWITH|ENDSWITH) string
//!                     | [NOT] BETWEEN unary AND unary
//!                     | [NOT] IN '(' string (',' string)* ')' )*
//! unary      := '+' unary | '-' unary | NOT unary | primary
//! primary    := literal | identifier | '(' or ')'
//! ```

use super::eval::{java_compare, Value};
use super::lexer::{Lexer, Tok};
use super::FilterError;

/// A literal (`ConstantExpression`); `Null`/`Bool` are Java's
/// `BooleanConstantExpression`s.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(String),
}

impl Literal {
    pub(crate) fn value(&self) -> Value<'_> {
        match self {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Long(l) => Value::Long(*l),
            Literal::Double(d) => Value::Double(*d),
            Literal::Str(s) => Value::Str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Property(String),
    Negate(Box<Expr>),
    Not(Box<Expr>),
    /// A bare property used as a condition (`UnaryExpression.createBooleanCast`).
    BoolCast(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `=`, and `IS NULL` as `= NULL`.
    Equal(Box<Expr>, Box<Expr>),
    Compare(Ordering, Box<Expr>, Box<Expr>),
    In {
        property: String,
        values: Vec<String>,
        not: bool,
    },
    Str {
        op: StrOp,
        not: bool,
        operand: Box<Expr>,
        search: String,
    },
}

impl Expr {
    /// Java's `instanceof BooleanExpression`.
    fn is_boolean(&self) -> bool {
        !matches!(
            self,
            Expr::Literal(
                Literal::Int(_) | Literal::Long(_) | Literal::Double(_) | Literal::Str(_)
            ) | Expr::Property(_)
                | Expr::Negate(_)
        )
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Literal(Literal::Null) => f.write_str("NULL"),
            Expr::Literal(Literal::Bool(b)) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Expr::Literal(Literal::Int(i)) => write!(f, "{i}"),
            Expr::Literal(Literal::Long(l)) => write!(f, "{l}"),
            Expr::Literal(Literal::Double(d)) => write!(f, "{d:?}"),
            Expr::Literal(Literal::Str(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Expr::Property(p) => f.write_str(p),
            Expr::Negate(e) => write!(f, "(- {e})"),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::BoolCast(e) => write!(f, "{e}"),
            Expr::And(l, r) => write!(f, "({l} AND {r})"),
            Expr::Or(l, r) => write!(f, "({l} OR {r})"),
            Expr::Equal(l, r) => write!(f, "({l} = {r})"),
            Expr::Compare(op, l, r) => {
                let s = match op {
                    Ordering::Gt => ">",
                    Ordering::Ge => ">=",
                    Ordering::Lt => "<",
                    Ordering::Le => "<=",
                };
                write!(f, "({l} {s} {r})")
            }
            Expr::In {
                property,
                values,
                not,
            } => {
                let list: Vec<String> = values
                    .iter()
                    .map(|v| format!("'{}'", v.replace('\'', "''")))
                    .collect();
                let not = if *not { "NOT " } else { "" };
                write!(f, "{property} {not}IN ({})", list.join(", "))
            }
            Expr::Str {
                op,
                not,
                operand,
                search,
            } => {
                let s = match op {
                    StrOp::Contains => "CONTAINS",
                    StrOp::StartsWith => "STARTSWITH",
                    StrOp::EndsWith => "ENDSWITH",
                };
                let not = if *not { "NOT " } else { "" };
                write!(f, "({operand} {not}{s} '{}')", search.replace('\'', "''"))
            }
        }
    }
}

fn err(msg: impl Into<String>) -> FilterError {
    FilterError::Parse(msg.into())
}

/// `SelectorParser.asBooleanExpression`.
fn as_boolean(e: Expr) -> Result<Expr, FilterError> {
    match e {
        e if e.is_boolean() => Ok(e),
        Expr::Property(_) => Ok(Expr::BoolCast(Box::new(e))),
        e => Err(err(format!(
            "expression will not result in a boolean value: {e}"
        ))),
    }
}

/// `ComparisonExpression.checkLessThanOperand`: only numbers, properties and
/// other non-boolean expressions may be ordered.
fn check_orderable(e: &Expr) -> Result<(), FilterError> {
    match e {
        Expr::Literal(Literal::Int(_) | Literal::Long(_) | Literal::Double(_)) => Ok(()),
        Expr::Literal(_) => Err(err(format!("value '{e}' cannot be compared"))),
        e if e.is_boolean() => Err(err(format!("value '{e}' cannot be compared"))),
        _ => Ok(()),
    }
}

fn compare(op: Ordering, l: Expr, r: Expr) -> Result<Expr, FilterError> {
    check_orderable(&l)?;
    check_orderable(&r)?;
    Ok(Expr::Compare(op, Box::new(l), Box::new(r)))
}

/// `ComparisonExpression.createEqual`.
fn equal(l: Expr, r: Expr) -> Result<Expr, FilterError> {
    for e in [&l, &r] {
        if *e == Expr::Literal(Literal::Null) {
            return Err(err(format!("'{e}' cannot be compared")));
        }
    }
    if let (Expr::Literal(a), Expr::Literal(b)) = (&l, &r) {
        let boolean = |x: &Literal| matches!(x, Literal::Null | Literal::Bool(_));
        if boolean(a) && !boolean(b) {
            return Err(err(format!("'{l}' cannot be compared with '{r}'")));
        }
    }
    Ok(Expr::Equal(Box::new(l), Box::new(r)))
}

/// `ComparisonExpression.createBetween`: literal bounds must be ordered.
fn between(value: Expr, low: Expr, high: Expr) -> Result<Expr, FilterError> {
    if let (Expr::Literal(lo), Expr::Literal(hi)) = (&low, &high) {
        if *lo == Literal::Null || *hi == Literal::Null {
            return Err(err("illegal values of between, values can not be null"));
        }
        let order = java_compare(hi.value(), lo.value())
            .map_err(|e| err(format!("illegal values of between: {e}")))?;
        if order < 0 {
            return Err(err(format!(
                "illegal values of between, left value({low}) must be less than or equal to right value({high})"
            )));
        }
    }
    let ge = compare(Ordering::Ge, value.clone(), low)?;
    let le = compare(Ordering::Le, value, high)?;
    Ok(Expr::And(Box::new(ge), Box::new(le)))
}

fn not_between(value: Expr, low: Expr, high: Expr) -> Result<Expr, FilterError> {
    let lt = compare(Ordering::Lt, value.clone(), low)?;
    let gt = compare(Ordering::Gt, value, high)?;
    Ok(Expr::Or(Box::new(lt), Box::new(gt)))
}

/// `ConstantExpression.createFromDecimal`: Integer when it fits, else Long.
fn decimal(text: &str) -> Result<Literal, FilterError> {
    let digits = text.trim_end_matches(['l', 'L']);
    let v: i64 = digits
        .parse()
        .map_err(|_| err(format!("number out of range: {text}")))?;
    Ok(i32::try_from(v).map_or(Literal::Long(v), Literal::Int))
}

/// `ConstantExpression.createFloat`: rejects infinity and anything below
/// `Double.MIN_VALUE` (so also every literal that is zero).
fn float(text: &str) -> Result<Literal, FilterError> {
    let v: f64 = text
        .parse()
        .map_err(|_| err(format!("bad number: {text}")))?;
    if v > f64::MAX {
        return Err(err(format!("{text} is greater than {:e}", f64::MAX)));
    }
    if v < f64::from_bits(1) {
        return Err(err(format!("{text} is less than 4.9E-324")));
    }
    Ok(Literal::Double(v))
}

pub(crate) struct Parser<'a> {
    lex: Lexer<'a>,
}

impl<'a> Parser<'a> {
    pub fn new(src: &'a str) -> Self {
        Parser {
            lex: Lexer::new(src),
        }
    }

    /// `JmsSelector`: one expression; whatever follows it is not read.
    pub fn selector(mut self) -> Result<Expr, FilterError> {
        let e = self.or()?;
        as_boolean(e)
    }

    fn peek(&mut self) -> Result<&Tok, FilterError> {
        Ok(&self.lex.peek(0)?.tok)
    }

    fn peek2(&mut self) -> Result<&Tok, FilterError> {
        Ok(&self.lex.peek(1)?.tok)
    }

    fn expect(&mut self, want: Tok) -> Result<(), FilterError> {
        let t = self.lex.next()?;
        if t.tok == want {
            Ok(())
        } else {
            Err(unexpected(&t.tok, t.column, &format!("'{want}'")))
        }
    }

    fn string(&mut self) -> Result<String, FilterError> {
        let t = self.lex.next()?;
        match t.tok {
            Tok::Str(s) => Ok(s),
            other => Err(unexpected(&other, t.column, "a string literal")),
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while *self.peek()? == Tok::Or {
            self.lex.next()?;
            let right = self.and()?;
            left = Expr::Or(Box::new(as_boolean(left)?), Box::new(as_boolean(right)?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.equality()?;
        while *self.peek()? == Tok::And {
            self.lex.next()?;
            let right = self.equality()?;
            left = Expr::And(Box::new(as_boolean(left)?), Box::new(as_boolean(right)?));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.comparison()?;
        loop {
            match self.peek()? {
                Tok::Eq => {
                    self.lex.next()?;
                    let right = self.comparison()?;
                    left = equal(left, right)?;
                }
                Tok::Ne => {
                    self.lex.next()?;
                    let right = self.comparison()?;
                    left = Expr::Not(Box::new(equal(left, right)?));
                }
                Tok::Is => {
                    self.lex.next()?;
                    let is_null =
                        Expr::Equal(Box::new(left), Box::new(Expr::Literal(Literal::Null)));
                    if *self.peek()? == Tok::Null {
                        self.lex.next()?;
                        left = is_null;
                    } else {
                        self.expect(Tok::Not)?;
                        self.expect(Tok::Null)?;
                        left = Expr::Not(Box::new(is_null));
                    }
                }
                _ => return Ok(left),
            }
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek()? {
                Tok::Gt => Some(Ordering::Gt),
                Tok::Ge => Some(Ordering::Ge),
                Tok::Lt => Some(Ordering::Lt),
                Tok::Le => Some(Ordering::Le),
                _ => None,
            };
            if let Some(op) = op {
                self.lex.next()?;
                let right = self.unary()?;
                left = compare(op, left, right)?;
                continue;
            }
            // NOT only continues a comparison when one of these follows it.
            let not = *self.peek()? == Tok::Not;
            let t = if not { self.peek2()? } else { self.peek()? }.clone();
            let str_op = match t {
                Tok::Contains => Some(StrOp::Contains),
                Tok::StartsWith => Some(StrOp::StartsWith),
                Tok::EndsWith => Some(StrOp::EndsWith),
                _ => None,
            };
            match (str_op, &t) {
                (Some(op), _) => {
                    self.skip(not)?;
                    let search = self.string()?;
                    left = Expr::Str {
                        op,
                        not,
                        operand: Box::new(left),
                        search,
                    };
                }
                (None, Tok::Between) => {
                    self.skip(not)?;
                    let low = self.unary()?;
                    self.expect(Tok::And)?;
                    let high = self.unary()?;
                    left = if not {
                        not_between(left, low, high)?
                    } else {
                        between(left, low, high)?
                    };
                }
                (None, Tok::In) => {
                    self.skip(not)?;
                    self.expect(Tok::LParen)?;
                    let mut values = vec![self.string()?];
                    while *self.peek()? == Tok::Comma {
                        self.lex.next()?;
                        values.push(self.string()?);
                    }
                    self.expect(Tok::RParen)?;
                    let Expr::Property(property) = left else {
                        return Err(err(format!(
                            "expected a property for IN expression, got: {left}"
                        )));
                    };
                    left = Expr::In {
                        property,
                        values,
                        not,
                    };
                }
                _ if not => {
                    let n = self.lex.next()?;
                    let t = self.lex.next()?;
                    return Err(unexpected(
                        &t.tok,
                        t.column,
                        &format!(
                            "CONTAINS, STARTSWITH, ENDSWITH, BETWEEN or IN after '{}'",
                            n.tok
                        ),
                    ));
                }
                _ => return Ok(left),
            }
        }
    }

    /// Consumes the optional NOT and the operator keyword.
    fn skip(&mut self, not: bool) -> Result<(), FilterError> {
        if not {
            self.lex.next()?;
        }
        self.lex.next()?;
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.peek()? {
            Tok::Plus => {
                self.lex.next()?;
                self.unary()
            }
            Tok::Minus => {
                self.lex.next()?;
                Ok(Expr::Negate(Box::new(self.unary()?)))
            }
            Tok::Not => {
                self.lex.next()?;
                let e = self.unary()?;
                Ok(Expr::Not(Box::new(as_boolean(e)?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let t = self.lex.next()?;
        Ok(match t.tok {
            Tok::Str(s) => Expr::Literal(Literal::Str(s)),
            Tok::Decimal(d) => Expr::Literal(decimal(&d)?),
            Tok::Float(f) => Expr::Literal(float(&f)?),
            Tok::True => Expr::Literal(Literal::Bool(true)),
            Tok::False => Expr::Literal(Literal::Bool(false)),
            Tok::Null => Expr::Literal(Literal::Null),
            Tok::Id(name) => Expr::Property(name),
            Tok::LParen => {
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                e
            }
            other => return Err(unexpected(&other, t.column, "a value, a property or '('")),
        })
    }
}

fn unexpected(tok: &Tok, column: usize, wanted: &str) -> FilterError {
    err(format!(
        "encountered \"{tok}\" at column {column}, expected {wanted}"
    ))
}
