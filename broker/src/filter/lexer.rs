//! Tokens of RocketMQ's selector grammar (`filter/.../parser/SelectorParser.jj`).
//!
//! Tokens are produced on demand: the Java parser (JavaCC) never reads past
//! the token after a complete expression, so a lexical error further on does
//! not fail the parse there and must not here either. Like JavaCC, the
//! longest match wins and a keyword beats an identifier of the same length.

use super::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
    Contains,
    StartsWith,
    EndsWith,
    /// `0 | [1-9][0-9]*[lL]?`, text as written.
    Decimal(String),
    /// `5.`, `5.5`, `.5`, `5E10`, `5.5e-3`, text as written.
    Float(String),
    /// Decoded (`''` -> `'`).
    Str(String),
    Id(String),
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    LParen,
    Comma,
    RParen,
    Plus,
    Minus,
    Eof,
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Tok::Not => "NOT",
            Tok::And => "AND",
            Tok::Or => "OR",
            Tok::Between => "BETWEEN",
            Tok::In => "IN",
            Tok::True => "TRUE",
            Tok::False => "FALSE",
            Tok::Null => "NULL",
            Tok::Is => "IS",
            Tok::Contains => "CONTAINS",
            Tok::StartsWith => "STARTSWITH",
            Tok::EndsWith => "ENDSWITH",
            Tok::Decimal(t) | Tok::Float(t) | Tok::Id(t) => t,
            Tok::Str(s) => return write!(f, "'{}'", s.replace('\'', "''")),
            Tok::Eq => "=",
            Tok::Ne => "<>",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::LParen => "(",
            Tok::Comma => ",",
            Tok::RParen => ")",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Eof => "<EOF>",
        };
        f.write_str(s)
    }
}

const KEYWORDS: &[(&str, Tok)] = &[
    ("NOT", Tok::Not),
    ("AND", Tok::And),
    ("OR", Tok::Or),
    ("BETWEEN", Tok::Between),
    ("IN", Tok::In),
    ("TRUE", Tok::True),
    ("FALSE", Tok::False),
    ("NULL", Tok::Null),
    ("IS", Tok::Is),
    ("CONTAINS", Tok::Contains),
    ("STARTSWITH", Tok::StartsWith),
    ("ENDSWITH", Tok::EndsWith),
];

/// A token and the 1-based column it starts at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub tok: Tok,
    pub column: usize,
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    peeked: Vec<Spanned>,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            peeked: Vec::new(),
        }
    }

    /// The `n`-th token ahead (0 = next), lexing only as far as needed.
    pub fn peek(&mut self, n: usize) -> Result<&Spanned, FilterError> {
        while self.peeked.len() <= n {
            let t = self.lex()?;
            self.peeked.push(t);
        }
        Ok(&self.peeked[n])
    }

    pub fn next(&mut self) -> Result<Spanned, FilterError> {
        self.peek(0)?;
        Ok(self.peeked.remove(0))
    }

    fn column(&self, byte: usize) -> usize {
        self.src[..byte].chars().count() + 1
    }

    fn error(&self, at: usize, what: &str) -> FilterError {
        FilterError::Parse(format!(
            "lexical error at column {}: {what}",
            self.column(at)
        ))
    }

    fn lex(&mut self) -> Result<Spanned, FilterError> {
        let b = self.src.as_bytes();
        // Whitespace and comments.
        loop {
            match b.get(self.pos) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => self.pos += 1,
                Some(b'-') if b.get(self.pos + 1) == Some(&b'-') => {
                    // A line comment needs its line end; without one the
                    // longest match is the `-` token.
                    match self.src[self.pos..].find(['\n', '\r']) {
                        Some(end) => self.pos += end + 1,
                        None => break,
                    }
                }
                Some(b'/') if b.get(self.pos + 1) == Some(&b'*') => {
                    match self.src[self.pos + 2..].find("*/") {
                        Some(end) => self.pos += 2 + end + 2,
                        None => return Err(self.error(self.pos, "unterminated comment")),
                    }
                }
                _ => break,
            }
        }
        let start = self.pos;
        let column = self.column(start);
        let Some(&c) = b.get(start) else {
            return Ok(Spanned {
                tok: Tok::Eof,
                column,
            });
        };
        let (tok, len) = match c {
            b'=' => (Tok::Eq, 1),
            b'<' => match b.get(start + 1) {
                Some(b'>') => (Tok::Ne, 2),
                Some(b'=') => (Tok::Le, 2),
                _ => (Tok::Lt, 1),
            },
            b'>' => match b.get(start + 1) {
                Some(b'=') => (Tok::Ge, 2),
                _ => (Tok::Gt, 1),
            },
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b',' => (Tok::Comma, 1),
            b'+' => (Tok::Plus, 1),
            b'-' => (Tok::Minus, 1),
            b'\'' => self.string(start)?,
            b'0'..=b'9' | b'.' => {
                let d = decimal_len(&b[start..]);
                let f = float_len(&b[start..]);
                if d == 0 && f == 0 {
                    return Err(self.error(start, "unexpected '.'"));
                }
                let text = |n: usize| self.src[start..start + n].to_owned();
                if f > d {
                    (Tok::Float(text(f)), f)
                } else {
                    (Tok::Decimal(text(d)), d)
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let len = b[start..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$')
                    .count();
                let word = &self.src[start..start + len];
                let tok = KEYWORDS
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(word))
                    .map_or_else(|| Tok::Id(word.to_owned()), |(_, t)| t.clone());
                (tok, len)
            }
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                return Err(self.error(start, &format!("unexpected character {ch:?}")));
            }
        };
        self.pos = start + len;
        Ok(Spanned { tok, column })
    }

    /// `'` ( `''` | any char but `'` )* `'`
    fn string(&self, start: usize) -> Result<(Tok, usize), FilterError> {
        let rest = &self.src[start + 1..];
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, c)| *c) == Some('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok((Tok::Str(out), 1 + i + 1));
                }
            } else {
                out.push(c);
            }
        }
        Err(self.error(start, "unterminated string literal"))
    }
}

/// Length of a DECIMAL_LITERAL match at the start of `b` (0 = none).
fn decimal_len(b: &[u8]) -> usize {
    match b.first() {
        Some(b'0') => 1,
        Some(b'1'..=b'9') => {
            let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
            n + usize::from(matches!(b.get(n), Some(b'l' | b'L')))
        }
        _ => 0,
    }
}

/// Length of a FLOATING_POINT_LITERAL match at the start of `b` (0 = none).
fn float_len(b: &[u8]) -> usize {
    let digits = |from: usize| {
        b[from.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let exponent = |at: usize| -> usize {
        if !matches!(b.get(at), Some(b'e' | b'E')) {
            return 0;
        }
        let sign = usize::from(matches!(b.get(at + 1), Some(b'+' | b'-')));
        let n = digits(at + 1 + sign);
        if n == 0 {
            0
        } else {
            1 + sign + n
        }
    };
    let int = digits(0);
    if int > 0 {
        if b.get(int) == Some(&b'.') {
            let frac = digits(int + 1);
            let end = int + 1 + frac;
            return end + exponent(end);
        }
        let e = exponent(int);
        return if e > 0 { int + e } else { 0 };
    }
    if b.first() == Some(&b'.') {
        let frac = digits(1);
        if frac > 0 {
            return 1 + frac + exponent(1 + frac);
        }
    }
    0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn all(s: &str) -> Result<Vec<Tok>, FilterError> {
        let mut l = Lexer::new(s);
        let mut out = Vec::new();
        loop {
            let t = l.next()?.tok;
            if t == Tok::Eof {
                return Ok(out);
            }
            out.push(t);
        }
    }

    #[test]
    fn numbers_take_the_longest_match() {
        let d = |s: &str| Tok::Decimal(s.into());
        let f = |s: &str| Tok::Float(s.into());
        assert_eq!(
            all("5 5L 0 5. 5.5 .5 5E10 5.5e-3 5e+2").unwrap(),
            vec![
                d("5"),
                d("5L"),
                d("0"),
                f("5."),
                f("5.5"),
                f(".5"),
                f("5E10"),
                f("5.5e-3"),
                f("5e+2")
            ]
        );
        // "0L" is 0 then an identifier; "01" is 0 then 1; "1e" is 1 then e.
        assert_eq!(all("0L").unwrap(), vec![d("0"), Tok::Id("L".into())]);
        assert_eq!(all("01").unwrap(), vec![d("0"), d("1")]);
        assert_eq!(all("1e").unwrap(), vec![d("1"), Tok::Id("e".into())]);
        assert_eq!(all("01.5").unwrap(), vec![f("01.5")]);
        assert!(all(".").is_err());
    }

    #[test]
    fn keywords_ignore_case_identifiers_do_not() {
        assert_eq!(
            all("and AnD android $x_1 a1").unwrap(),
            vec![
                Tok::And,
                Tok::And,
                Tok::Id("android".into()),
                Tok::Id("$x_1".into()),
                Tok::Id("a1".into())
            ]
        );
        assert_eq!(
            all("startsWith EndsWith contains").unwrap(),
            vec![Tok::StartsWith, Tok::EndsWith, Tok::Contains]
        );
    }

    #[test]
    fn strings_comments_and_operators() {
        assert_eq!(
            all("'it''s' '' 'a\nb'").unwrap(),
            vec![
                Tok::Str("it's".into()),
                Tok::Str(String::new()),
                Tok::Str("a\nb".into())
            ]
        );
        assert!(all("'open").is_err());
        assert_eq!(
            all("a /* x */ <> -- c\n b").unwrap(),
            vec![Tok::Id("a".into()), Tok::Ne, Tok::Id("b".into())]
        );
        // A line comment without a line end is two minus signs.
        assert_eq!(all("-- c").unwrap()[..2], [Tok::Minus, Tok::Minus]);
        assert!(all("/* open").is_err());
        assert_eq!(
            all("<=>=<> < >").unwrap(),
            vec![Tok::Le, Tok::Ge, Tok::Ne, Tok::Lt, Tok::Gt]
        );
        assert!(all("a != b").is_err());
        assert!(all("a.b").is_err());
        assert!(all("é").is_err());
    }

    #[test]
    fn lexing_is_lazy() {
        let mut l = Lexer::new("a ! b");
        assert_eq!(l.next().unwrap().tok, Tok::Id("a".into()));
        assert!(l.next().is_err());
    }
}
