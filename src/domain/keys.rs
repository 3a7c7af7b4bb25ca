//! Which keys of a period WeChat has published: a small set, copied freely.

/// A set of keys (0..=31), as a bitmask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySet(u32);

impl KeySet {
    pub const EMPTY: KeySet = KeySet(0);

    /// The keys of `keys` that fit; others are ignored (validation refuses
    /// them long before they get here).
    pub fn of(keys: impl IntoIterator<Item = u8>) -> Self {
        Self(
            keys.into_iter()
                .filter(|k| *k < 32)
                .fold(0, |bits, k| bits | (1 << k)),
        )
    }

    pub fn contains(self, key: u8) -> bool {
        key < 32 && self.0 & (1 << key) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: KeySet) -> KeySet {
        KeySet(self.0 | other.0)
    }

    /// The keys, ascending.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..32u8).filter(move |k| self.contains(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_it_was_given_and_unions() {
        let a = KeySet::of([0, 2, 4]);
        assert!(a.contains(2) && !a.contains(1) && !a.contains(40));
        assert_eq!(
            a.union(KeySet::of([1])).iter().collect::<Vec<_>>(),
            [0, 1, 2, 4]
        );
        assert!(KeySet::of([]).is_empty());
        assert_eq!(KeySet::of([31, 32]).iter().collect::<Vec<_>>(), [31]);
    }
}
