//! Keyset pages of the lists sorted in memory: `ListTierMovers`,
//! `ListComplaintQueue` and `ListOverdueComplaints`.
//!
//! Each list has a total order (its sort key ends in ids that are
//! unique), and a page token holds the key of the last item served and a
//! fingerprint of the request's filter; the next page starts strictly
//! after that key. However the data change between pages, an item whose
//! key does not change is served exactly once (never skipped, never
//! repeated); one whose key moves (a complaint whose customer changed
//! tier moves in the queue) is served where it stands when its page is
//! read. Tokens hold no server state: they do not expire and survive
//! restarts. A token of another list, another filter or not issued by
//! this server is `INVALID_ARGUMENT` naming `page_token`.

use crate::error::ApiError;
use crate::reports::Fnv;

/// The page token format of one list.
pub(crate) struct Tokens {
    /// The RPC, for the error.
    pub(crate) rpc: &'static str,
    /// Tag of the list and the format's version.
    pub(crate) tag: &'static str,
    /// The request fields the walk must keep, for the error.
    pub(crate) filter: &'static str,
}

impl Tokens {
    /// The refusal of a token this list did not issue.
    pub(crate) fn foreign(&self) -> ApiError {
        ApiError::invalid(
            "page_token",
            format!(
                "not a token of this server's {}: send the next_page_token of the previous page unchanged, or none for the first page",
                self.rpc
            ),
        )
    }

    /// `<tag>.<fingerprint>.<hex field>...<checksum>`.
    pub(crate) fn encode(&self, fingerprint: u64, fields: &[String]) -> String {
        let mut body = format!("{}.{fingerprint:016x}", self.tag);
        for f in fields {
            body.push('.');
            body.push_str(&hex(f.as_bytes()));
        }
        let check = token_check(&body);
        format!("{body}.{check:016x}")
    }

    /// The `n` fields of `token`, if this list issued it for
    /// `fingerprint`.
    pub(crate) fn decode(
        &self,
        token: &str,
        fingerprint: u64,
        n: usize,
    ) -> Result<Vec<String>, ApiError> {
        let foreign = || self.foreign();
        let (body, check) = token.rsplit_once('.').ok_or_else(foreign)?;
        if check.len() != 16 || u64::from_str_radix(check, 16).ok() != Some(token_check(body)) {
            return Err(foreign());
        }
        let mut parts = body.split('.');
        if parts.next() != Some(self.tag) {
            return Err(foreign());
        }
        let fp = parts
            .next()
            .and_then(|fp| u64::from_str_radix(fp, 16).ok())
            .ok_or_else(foreign)?;
        let fields = parts
            .map(|f| unhex(f).and_then(|bytes| String::from_utf8(bytes).ok()))
            .collect::<Option<Vec<String>>>()
            .filter(|fields| fields.len() == n)
            .ok_or_else(foreign)?;
        if fp != fingerprint {
            return Err(ApiError::invalid(
                "page_token",
                format!(
                    "was issued for another filter: send {} as in the walk's first request, or start over without a page_token",
                    self.filter
                ),
            ));
        }
        Ok(fields)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The checksum of a token's body (everything before the last `.`).
fn token_check(body: &str) -> u64 {
    let mut h = Fnv::new();
    h.write(body.as_bytes());
    h.finish()
}

/// The page of `sorted` (ascending by `key`, keys unique) after `cursor`
/// (`None`: the first page), at most `limit` items, and the key of its
/// last item when more follow.
pub(crate) fn after<T, K: Ord>(
    sorted: Vec<T>,
    key: impl Fn(&T) -> K,
    cursor: Option<&K>,
    limit: usize,
) -> (Vec<T>, Option<K>) {
    let start = cursor.map_or(0, |c| sorted.partition_point(|x| key(x) <= *c));
    let more = sorted.len().saturating_sub(start) > limit;
    let page: Vec<T> = sorted.into_iter().skip(start).take(limit).collect();
    let next = if more { page.last().map(&key) } else { None };
    (page, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENS: Tokens = Tokens {
        rpc: "ListThings",
        tag: "t1",
        filter: "since",
    };

    #[test]
    fn a_walk_serves_each_item_once_whatever_is_added_between_pages() {
        let mut items: Vec<u32> = (0..10).map(|i| i * 10).collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = after(items.clone(), |x| *x, cursor.as_ref(), 3);
            seen.extend(page);
            // Something new sorts before the walk, something after it.
            items.push(1);
            items.push(seen.last().copied().unwrap_or(0) + 5);
            items.sort_unstable();
            items.dedup();
            match next {
                Some(k) => cursor = Some(k),
                None => break,
            }
        }
        let mut expected: Vec<u32> = (0..10).map(|i| i * 10).collect();
        assert!(expected.iter().all(|x| seen.contains(x)), "{seen:?}");
        let before = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), before, "never twice");
        expected.retain(|x| !seen.contains(x));
        assert!(expected.is_empty());
    }

    #[test]
    fn the_last_page_has_no_next() {
        let (page, next) = after(vec![1, 2, 3], |x| *x, None, 3);
        assert_eq!((page, next), (vec![1, 2, 3], None));
        let (page, next) = after(vec![1, 2, 3], |x| *x, None, 2);
        assert_eq!((page, next), (vec![1, 2], Some(2)));
        let (page, next) = after(vec![1, 2, 3], |x| *x, Some(&2), 2);
        assert_eq!((page, next), (vec![3], None));
    }

    #[test]
    fn tokens_round_trip_and_refuse_what_they_did_not_issue() {
        let fields = vec!["-17".to_owned(), "c.1\nx".to_owned()];
        let token = TOKENS.encode(7, &fields);
        assert_eq!(TOKENS.decode(&token, 7, 2).unwrap(), fields);
        let other = TOKENS.decode(&token, 8, 2).unwrap_err().to_string();
        assert!(
            other.contains("page_token") && other.contains("since"),
            "{other}"
        );
        for bad in [
            "",
            "garbage",
            &token.replace("t1.", "t2."),
            &format!("{token}0"),
        ] {
            let e = TOKENS.decode(bad, 7, 2).unwrap_err().to_string();
            assert!(e.contains("not a token of this server's ListThings"), "{e}");
        }
        assert!(TOKENS.decode(&token, 7, 3).is_err(), "another shape");
    }
}
