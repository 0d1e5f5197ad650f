use super::*;

struct Scan<'a> {
    /// The whole header, checked to be UTF-8 up front.
    t: &'a str,
    b: &'a [u8],
    i: usize,
}

/// The one-letter keys of SEND_MESSAGE_V2 and friends, stored statically.
const LETTERS: [&str; 26] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
    "t", "u", "v", "w", "x", "y", "z",
];

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn eat_word(&mut self, w: &[u8]) -> bool {
        if self.b[self.i..].starts_with(w) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    /// A JSON integer that fits an `i32`.
    fn int(&mut self) -> Option<i32> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        let n = self.i - digits;
        if n == 0 || n > 10 || (n > 1 && self.b[digits] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(self.i) {
            return None;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        text.parse::<i64>().ok().and_then(|v| i32::try_from(v).ok())
    }

    /// A string's raw bytes when it has no escapes (a key).
    fn plain(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        let s = &self.b[start..self.i];
        self.i += 1;
        Some(s)
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        // Size the result once: the raw length bounds the decoded one.
        let rest = &self.b[self.i..];
        let mut out = match rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        {
            Some(n) if rest[n] == b'"' => {
                let s = self.t.get(self.i..self.i + n)?;
                self.i += n + 1;
                return Some(s.to_owned());
            }
            Some(n) if rest[n] < 0x20 => return None,
            Some(_) => {
                let end = rest.iter().rposition(|&c| c == b'"')?;
                String::with_capacity(end)
            }
            None => return None,
        };
        let mut run = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    out.push_str(self.t.get(run..self.i)?);
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push_str(self.t.get(run..self.i)?);
                    self.i += 1;
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = match hi {
                                0xD800..=0xDBFF => {
                                    if !self.eat_word(b"\\u") {
                                        return None;
                                    }
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                c => c,
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    out.push(c);
                    run = self.i;
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// A string as an [`ExtFields`] entry: a span of the text from
    /// `base` when it has no escapes, else the decoded string.
    fn field(&mut self, base: usize) -> Option<Field> {
        let start = self.i;
        match self.plain() {
            Some(raw) => {
                let from = start + 1 - base;
                Some(Field::Span(
                    u32::try_from(from).ok()?,
                    u32::try_from(from + raw.len()).ok()?,
                ))
            }
            None => {
                self.i = start;
                self.string().map(Field::Owned)
            }
        }
    }

    fn ext_fields(&mut self) -> Option<Option<ExtFields>> {
        if self.eat_word(b"null") {
            return Some(None);
        }
        let base = self.i;
        self.eat(b'{')?;
        let mut entries: Vec<(Field, Field)> = Vec::with_capacity(16);
        // One bit per one-letter key seen; other keys are compared.
        let mut letters = 0u32;
        let mut spans = false;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(Some(ExtFields::new()));
        }
        loop {
            self.ws();
            let key_at = self.i + 1;
            let raw = self.plain()?;
            let key = match raw {
                [c @ b'a'..=b'z'] => {
                    let bit = 1 << (c - b'a');
                    if letters & bit != 0 {
                        return None;
                    }
                    letters |= bit;
                    Field::Static(LETTERS[(c - b'a') as usize])
                }
                // Many keys: the general decoder (hashed look-ups) takes
                // it rather than a quadratic duplicate check here.
                _ if entries.len() >= crate::command::LINEAR_MAX => return None,
                _ => {
                    let text = self.b;
                    let seen = |f: &Field| match f {
                        Field::Span(a, b) => {
                            text.get(base + *a as usize..base + *b as usize) == Some(raw)
                        }
                        Field::Static(s) => s.as_bytes() == raw,
                        Field::Owned(s) => s.as_bytes() == raw,
                    };
                    if entries.iter().any(|(k, _)| seen(k)) {
                        return None;
                    }
                    spans = true;
                    let from = key_at - base;
                    Field::Span(
                        u32::try_from(from).ok()?,
                        u32::try_from(from + raw.len()).ok()?,
                    )
                }
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.field(base)?;
            spans |= matches!(value, Field::Span(..));
            entries.push((key, value));
            self.ws();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        // Only the extFields object is kept, and only when entries point into it.
        let text: Option<Arc<str>> = if spans {
            Some(Arc::from(self.t.get(base..self.i)?))
        } else {
            None
        };
        Some(Some(ExtFields::from_decoded(text, entries)))
    }
}

fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

pub(super) fn decode(header: &[u8]) -> Option<RemotingCommand> {
    let text = std::str::from_utf8(header).ok()?;
    let mut p = Scan {
        t: text,
        b: header,
        i: 0,
    };
    let (mut code, mut flag, mut opaque, mut version) = (None, None, None, None);
    let (mut language, mut remark, mut ext, mut rpc) = (None, None, None, None);
    p.ws();
    p.eat(b'{')?;
    loop {
        p.ws();
        let key = p.plain()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match key {
            b"code" => once(&mut code, p.int()?)?,
            b"flag" => once(&mut flag, p.int()?)?,
            b"opaque" => once(&mut opaque, p.int()?)?,
            b"version" => once(&mut version, p.int()?)?,
            b"language" => {
                // The name has no escapes in practice: read it in place.
                let start = p.i;
                let code = match p.plain() {
                    Some(raw) => LanguageCode::from_name(std::str::from_utf8(raw).ok()?),
                    None => {
                        p.i = start;
                        LanguageCode::from_name(&p.string()?)
                    }
                };
                once(&mut language, code.unwrap_or(LanguageCode::Other))?
            }
            b"remark" => {
                let r = if p.eat_word(b"null") {
                    None
                } else {
                    Some(p.string()?)
                };
                once(&mut remark, r)?
            }
            // Checked, not kept: no need to build the string.
            b"serializeTypeCurrentRPC" => once(&mut rpc, p.field(0)?)?,
            b"extFields" => once(&mut ext, p.ext_fields()?)?,
            _ => return None,
        }
        p.ws();
        match p.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    if p.i != header.len() {
        return None;
    }
    Some(RemotingCommand {
        code: code.unwrap_or(0),
        language: language.unwrap_or(LanguageCode::Java),
        version: version.unwrap_or(0),
        opaque: opaque.unwrap_or(0),
        flag: flag.unwrap_or(0),
        remark: remark.flatten(),
        ext_fields: ext.flatten(),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}
