//! Money. Every amount lnvend handles is a [`Msat`]: millisatoshis in a newtype with a private
//! field, so sats and msats can never be mixed up silently, and all arithmetic is checked
//! (an overflow is an error, never a wrap-around that could turn a price into zero).

use std::fmt;

/// An amount of bitcoin in millisatoshis (1 sat = 1000 msat).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Msat(u64);

impl Msat {
    pub const ZERO: Msat = Msat(0);

    pub const fn from_msat(msat: u64) -> Msat {
        Msat(msat)
    }

    /// Whole satoshis; `None` if the amount would not fit in a `u64` of msat.
    pub fn from_sat(sat: u64) -> Option<Msat> {
        sat.checked_mul(1000).map(Msat)
    }

    pub const fn as_msat(self) -> u64 {
        self.0
    }

    /// Whole satoshis if the amount is an exact number of them.
    pub fn as_whole_sat(self) -> Option<u64> {
        (self.0 % 1000 == 0).then_some(self.0 / 1000)
    }

    pub fn checked_add(self, other: Msat) -> Option<Msat> {
        self.0.checked_add(other.0).map(Msat)
    }

    pub fn checked_sub(self, other: Msat) -> Option<Msat> {
        self.0.checked_sub(other.0).map(Msat)
    }

    /// Sats with thousands separators and the unit, for the customer ("2,100 sats").
    pub fn display_sats(self) -> String {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        let digits = whole.to_string();
        let mut out = String::with_capacity(digits.len() + 8);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if frac != 0 {
            out.push_str(&format!(".{frac:03}"));
        }
        out.push_str(if self.0 == 1000 { " sat" } else { " sats" });
        out
    }
}

impl fmt::Display for Msat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} msat", self.0)
    }
}

impl fmt::Debug for Msat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} msat", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sats_convert_to_msat_and_overflow_is_refused() {
        assert_eq!(Msat::from_sat(2100).unwrap().as_msat(), 2_100_000);
        assert_eq!(Msat::from_sat(u64::MAX), None);
        assert_eq!(Msat::from_msat(1500).as_whole_sat(), None);
        assert_eq!(Msat::from_msat(3000).as_whole_sat(), Some(3));
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Msat::from_msat(5);
        assert_eq!(a.checked_sub(Msat::from_msat(6)), None);
        assert_eq!(Msat::from_msat(u64::MAX).checked_add(a), None);
        assert_eq!(a.checked_add(a), Some(Msat::from_msat(10)));
    }

    #[test]
    fn customer_sees_grouped_sats_and_developer_sees_the_unit() {
        assert_eq!(Msat::from_sat(2100).unwrap().display_sats(), "2,100 sats");
        assert_eq!(Msat::from_sat(1).unwrap().display_sats(), "1 sat");
        assert_eq!(Msat::from_sat(999).unwrap().display_sats(), "999 sats");
        assert_eq!(
            Msat::from_sat(1_000_000).unwrap().display_sats(),
            "1,000,000 sats"
        );
        assert_eq!(Msat::from_msat(1500).display_sats(), "1.500 sats");
        assert_eq!(Msat::from_msat(7).to_string(), "7 msat");
    }
}
