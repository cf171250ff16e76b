//! [`Few`]: a list that almost always holds one element, kept inline until it holds two. The
//! index keeps one per task, node, service and network (a task's addresses, a network's pools
//! and VXLAN ids), and a heap allocation for each was most of the cost of building and dropping
//! an engine of a small store (and one allocation per task of a large restore).

use std::fmt;
use std::ops::{Deref, DerefMut};

/// A `Vec` without a heap allocation for zero or one element. It compares, hashes and prints as
/// the slice it holds, whatever its representation.
#[derive(Clone)]
pub(crate) enum Few<T> {
    One(T),
    /// Zero, or two and more.
    Many(Vec<T>),
}

impl<T> Few<T> {
    pub(crate) const fn new() -> Self {
        Few::Many(Vec::new())
    }

    pub(crate) fn push(&mut self, value: T) {
        match self {
            Few::Many(list) if list.is_empty() => *self = Few::One(value),
            Few::Many(list) => list.push(value),
            Few::One(_) => {
                let Few::One(first) = std::mem::replace(self, Few::Many(Vec::new())) else { unreachable!() };
                *self = Few::Many(vec![first, value]);
            }
        }
    }
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few::new()
    }
}

impl<T> Deref for Few<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Few::One(value) => std::slice::from_ref(value),
            Few::Many(list) => list,
        }
    }
}

impl<T> DerefMut for Few<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Few::One(value) => std::slice::from_mut(value),
            Few::Many(list) => list,
        }
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut Few<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<T> FromIterator<T> for Few<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some(first) = iter.next() else { return Few::new() };
        let Some(second) = iter.next() else { return Few::One(first) };
        let mut list = Vec::with_capacity(2 + iter.size_hint().0);
        list.push(first);
        list.push(second);
        list.extend(iter);
        Few::Many(list)
    }
}

impl<T> From<Vec<T>> for Few<T> {
    fn from(mut list: Vec<T>) -> Self {
        match list.len() {
            1 => Few::One(list.pop().expect("one element")),
            _ => Few::Many(list),
        }
    }
}

impl<T: PartialEq> PartialEq for Few<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Few<T> {}

impl<T: fmt::Debug> fmt::Debug for Few<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn few_is_the_list_it_holds() {
        for n in 0..5 {
            let list: Vec<u32> = (0..n).collect();
            let mut pushed = Few::new();
            for value in &list {
                pushed.push(*value);
            }
            let collected: Few<u32> = list.iter().copied().collect();
            let converted = Few::from(list.clone());
            for few in [&pushed, &collected, &converted] {
                assert_eq!(&**few, &list[..]);
                assert_eq!(format!("{few:?}"), format!("{list:?}"));
                assert_eq!(format!("{few:#?}"), format!("{list:#?}"));
            }
            assert_eq!(pushed, collected);
            assert_eq!(collected, converted);
            assert_eq!(matches!(pushed, Few::One(_)), n == 1);
            assert_eq!(matches!(collected, Few::One(_)), n == 1);
        }
    }
}
