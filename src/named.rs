//! Named values: every option of the command line, the records and the
//! reports that takes one of a few values lists them once, each with the
//! name it goes by everywhere (`--gain-norm mean1`, `"norm":"mean1"`).
//! The command line offers exactly these names; records spell them the
//! same way (a test holds the two together).

/// A value with a fixed name, one of a closed list.
pub trait Named: Sized + Copy + PartialEq + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];

    /// The name used on the command line, in records and in reports.
    fn name(self) -> &'static str;

    /// The value called `name`, if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }

    /// Every name, in [`Named::ALL`] order.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.name()).collect()
    }
}

/// Implements [`Named`] for an enum from `Variant => "name"` pairs, in
/// help order, with the same `ALL` (an array) and `name` as inherent
/// items, so that callers need not import the trait.
#[macro_export]
macro_rules! named {
    ($type:ty { $($variant:path => $name:literal),+ $(,)? }) => {
        impl $type {
            /// Every value, in the order help texts list them.
            pub const ALL: [Self; [$($name),+].len()] = [$($variant),+];

            /// The name used on the command line, in records and in reports.
            pub fn name(self) -> &'static str {
                match self {
                    $($variant => $name),+
                }
            }
        }

        impl $crate::named::Named for $type {
            const ALL: &'static [Self] = &<$type>::ALL;

            fn name(self) -> &'static str {
                <$type>::name(self)
            }
        }
    };
}
