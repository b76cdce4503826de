//! [`Name`]: a string that many of the read model's views share (a tier,
//! a policy version, an account manager), interned, in one pointer.
//!
//! The read model holds a million views or more, each naming its held
//! tier, its computed tier, its policy version and its account manager,
//! and each step of its tier history names two tiers. There are a handful
//! of distinct values, so each is allocated once ([`intern`]) and every
//! view points at it. `Arc<str>` is a pointer and a length (16 bytes);
//! a `Name` is an `Arc` of a boxed `str`, one pointer (8 bytes, and `None`
//! costs nothing in an `Option<Name>`): the length sits in the shared
//! allocation, once per value rather than once per view.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use tier_core::projection::Fnv;

/// A shared, immutable string in one pointer (see the module docs).
/// Compares, orders and hashes as its `str`, so a map keyed by `Name`s is
/// looked up by `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<Box<str>>);

impl Name {
    /// A new allocation of `s` (not interned: see [`intern`]).
    pub fn new(s: &str) -> Self {
        Name(Arc::new(Box::from(s)))
    }

    /// The empty name: one shared allocation.
    pub fn empty() -> Self {
        static EMPTY: OnceLock<Name> = OnceLock::new();
        EMPTY.get_or_init(|| Name::new("")).clone()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same allocation (interned from the same table).
    pub fn ptr_eq(a: &Name, b: &Name) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        intern(s)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        **self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        **self.0 == **other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self.0, f)
    }
}

impl Default for Name {
    fn default() -> Self {
        Name::empty()
    }
}

/// Most distinct strings an [`intern`] table keeps (per thread): tiers,
/// policy versions and account managers are few; past this, strings are
/// no longer shared, only copied.
const INTERNED_MAX: usize = 4_096;

/// `s` as a shared [`Name`]: one allocation per distinct value (per thread
/// that builds views), rather than one per customer.
pub fn intern(s: &str) -> Name {
    // FNV, as the other maps here: each view interns three or four strings.
    type Table = HashSet<Name, BuildHasherDefault<Fnv>>;
    thread_local! {
        static TABLE: RefCell<Table> = RefCell::new(Table::default());
    }
    TABLE.with_borrow_mut(|table| match table.get(s) {
        Some(shared) => shared.clone(),
        None => {
            let shared = Name::new(s);
            if table.len() < INTERNED_MAX {
                table.insert(shared.clone());
            }
            shared
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_name_is_one_pointer_and_none_costs_nothing() {
        assert_eq!(size_of::<Name>(), size_of::<usize>());
        assert_eq!(size_of::<Option<Name>>(), size_of::<usize>());
    }

    #[test]
    fn interned_names_share_one_allocation_and_act_as_their_str() {
        let a = intern("gold");
        let b = intern("gold");
        assert!(Name::ptr_eq(&a, &b));
        assert!(!Name::ptr_eq(&a, &Name::new("gold")));
        assert_eq!(a, Name::new("gold"), "equal by content, not by pointer");
        assert!(a == "gold" && &*a == "gold" && a.as_str() == "gold");
        assert_eq!(a.to_string(), "gold");
        assert_eq!(format!("{a:?}"), "\"gold\"");
        assert!(intern("gold") < intern("silver"), "ordered as the strings");
        let mut by_name: HashMap<Name, u32> = HashMap::new();
        by_name.insert(a, 1);
        assert_eq!(by_name.get("gold"), Some(&1), "looked up by &str");
        assert!(Name::ptr_eq(&Name::empty(), &Name::default()));
        assert!(Name::empty().is_empty());
    }
}
