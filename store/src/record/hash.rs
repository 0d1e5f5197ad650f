//! Java-compatible hashes: the body CRC (`UtilAll.crc32`) and
//! `String.hashCode()`, the base of the tag code and the index key hash.

/// Java `UtilAll.crc32`: CRC32 (zlib polynomial) masked to 31 bits.
pub fn crc32(data: &[u8]) -> i32 {
    (crc32fast::hash(data) & 0x7FFF_FFFF) as i32
}

/// Java `String.hashCode()`: `h = 31 * h + unit` over the UTF-16 code units,
/// wrapping. The one implementation; the tag code and the index key hash
/// are built on it.
pub fn java_string_hash(s: &str) -> i32 {
    java_hash_continue(0, s)
}

/// [`java_string_hash`] of `prefix + s` given the hash `h` of `prefix`:
/// ASCII bytes are UTF-16 code units as they are; from the first non-ASCII
/// character on, the text is hashed as UTF-16.
pub(crate) fn java_hash_continue(mut h: i32, s: &str) -> i32 {
    for (i, &c) in s.as_bytes().iter().enumerate() {
        if c >= 0x80 {
            // Everything before `i` is ASCII, so `i` is a char boundary.
            return s.get(i..).map_or(h, |rest| {
                rest.encode_utf16()
                    .fold(h, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
            });
        }
        h = h.wrapping_mul(31).wrapping_add(i32::from(c));
    }
    h
}

/// Java `String.hashCode()` of the tags, sign-extended: the consume queue's
/// tag code (docs/protocol/messages.md §3). `""` hashes to 0, as does "no tags".
pub fn tags_hash_code(tags: &str) -> i64 {
    i64::from(java_string_hash(tags))
}

#[cfg(test)]
mod tests {
    use crate::record::*;

    #[test]
    fn tags_hash_matches_java() {
        assert_eq!(tags_hash_code(""), 0);
        // Java: "TagA".hashCode() == 84*31^3 + 97*31^2 + 103*31 + 65.
        assert_eq!(tags_hash_code("TagA"), 2_598_919);
        assert_eq!(tags_hash_code("a"), 97);
        // "hello world".hashCode() = 1794106052; "polygenelubricants" = MIN_VALUE.
        assert_eq!(tags_hash_code("hello world"), 1_794_106_052);
        assert_eq!(tags_hash_code("polygenelubricants"), i64::from(i32::MIN));
        // "Aa".hashCode() == "BB".hashCode() == 2112.
        assert_eq!(tags_hash_code("Aa"), 2112);
        assert_eq!(tags_hash_code("BB"), 2112);
        // Non-BMP char: UTF-16 surrogates 0xD83D 0xDE00.
        assert_eq!(tags_hash_code("\u{1F600}"), 0xD83D * 31 + 0xDE00);
        // UTF-16 units, not bytes: "中".hashCode() == 20013.
        assert_eq!(tags_hash_code("中"), 20013);
        assert_eq!(java_string_hash("中"), 20013);
    }
}
