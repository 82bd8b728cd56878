//! A string interner over one arena: every distinct string is copied once into a single
//! buffer and named by a dense `u32` id. No allocation per string, none per lookup.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

/// Dense ids for distinct strings.
#[derive(Clone, Default)]
pub(crate) struct Interner {
    arena: String,
    /// `(start, end)` of each id's bytes in `arena`.
    spans: Vec<(usize, usize)>,
    table: HashTable<u32>,
    hasher: FixedState,
}

impl fmt::Debug for Interner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.spans.len())
            .field("arena_bytes", &self.arena.len())
            .finish()
    }
}

fn span_str<'a>(arena: &'a str, spans: &[(usize, usize)], id: u32) -> &'a str {
    let (start, end) = spans[id as usize];
    &arena[start..end]
}

impl Interner {
    /// The id of `s`, interning it if new. `None` when more than `u32::MAX` distinct
    /// strings would be held.
    #[inline]
    pub(crate) fn intern(&mut self, s: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(s);
        let arena = &self.arena;
        let spans = &self.spans;
        if let Some(&id) = self.table.find(hash, |&id| span_str(arena, spans, id) == s) {
            return Some(id);
        }
        let id = u32::try_from(self.spans.len()).ok()?;
        let start = self.arena.len();
        self.arena.push_str(s);
        self.spans.push((start, self.arena.len()));
        let arena = &self.arena;
        let spans = &self.spans;
        let hasher = &self.hasher;
        self.table.insert_unique(hash, id, |&other| {
            hasher.hash_one(span_str(arena, spans, other))
        });
        Some(id)
    }

    /// The id of `s`, if interned.
    pub(crate) fn get_id(&self, s: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&id| span_str(&self.arena, &self.spans, id) == s)
            .copied()
    }

    /// The string of `id`.
    #[inline]
    pub(crate) fn resolve(&self, id: u32) -> &str {
        span_str(&self.arena, &self.spans, id)
    }

    /// Byte length of `id`'s string.
    #[inline]
    pub(crate) fn byte_len(&self, id: u32) -> usize {
        let (start, end) = self.spans[id as usize];
        end - start
    }

    /// Distinct strings held.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_each_distinct_string_once() {
        let mut i = Interner::default();
        let words = ["a", "bb", "a", "", "ccc", "bb", ""];
        let ids: Vec<u32> = words.iter().map(|w| i.intern(w).unwrap()).collect();
        assert_eq!(ids, [0, 1, 0, 2, 3, 1, 2]);
        assert_eq!(i.len(), 4);
        assert_eq!(i.resolve(3), "ccc");
        assert_eq!(i.byte_len(1), 2);
        assert_eq!(i.get_id("bb"), Some(1));
        assert_eq!(i.get_id("zz"), None);
        for n in 0..10_000 {
            let s = format!("value-{n}");
            let id = i.intern(&s).unwrap();
            assert_eq!(i.resolve(id), s);
        }
        assert_eq!(i.len(), 10_004);
    }
}
