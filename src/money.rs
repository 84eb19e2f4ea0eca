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

    /// The `part / whole` share of this amount, rounded *up* to a whole sat and never more
    /// than the amount itself: what a customer is given back for the undelivered part of a
    /// drink (the rounding is theirs, never the machine's). `None` for a share that is no
    /// share (`whole` 0, or `part` above it).
    pub fn share_rounded_up(self, part: u64, whole: u64) -> Option<Msat> {
        if whole == 0 || part > whole {
            return None;
        }
        // u128: an amount near u64::MAX times a part cannot overflow.
        let exact = (u128::from(self.0) * u128::from(part)).div_ceil(u128::from(whole));
        let sats = exact.div_ceil(1000) * 1000;
        let capped = sats.min(u128::from(self.0));
        u64::try_from(capped).ok().map(Msat)
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

/// A fiat price in minor units (cents), as the operator set it; the payment backend converts
/// it to sats when the invoice is made.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Fiat {
    minor: u64,
    currency: String,
}

impl Fiat {
    /// Parses "2.50" (at most two decimals) in `currency` (three letters, e.g. "EUR").
    pub fn parse(amount: &str, currency: &str) -> Result<Fiat, String> {
        let currency = currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "\"{currency}\" is not a three-letter currency code"
            ));
        }
        if currency == "BTC" || currency == "SAT" || currency == "SATS" {
            return Err("use price_sat for prices in bitcoin".into());
        }
        let amount = amount.trim();
        let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        if !digits(whole) || (!frac.is_empty() && !digits(frac)) || frac.len() > 2 {
            return Err(format!("\"{amount}\" is not an amount like 2.50"));
        }
        let whole: u64 = whole
            .parse()
            .map_err(|_| format!("\"{amount}\" is too large"))?;
        let frac: u64 = format!("{frac:0<2}").parse().unwrap_or(0);
        let minor = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| format!("\"{amount}\" is too large"))?;
        Ok(Fiat { minor, currency })
    }

    pub fn minor(&self) -> u64 {
        self.minor
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// "2.50", as payment APIs take it.
    pub fn amount_str(&self) -> String {
        format!("{}.{:02}", self.minor / 100, self.minor % 100)
    }
}

impl fmt::Display for Fiat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_str(), self.currency)
    }
}

/// What a product costs.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Price {
    Sats(Msat),
    Fiat(Fiat),
}

impl Price {
    /// For the customer: "2,100 sats" or "2.50 EUR".
    pub fn display(&self) -> String {
        match self {
            Price::Sats(m) => m.display_sats(),
            Price::Fiat(f) => f.to_string(),
        }
    }

    /// The exact amount, when the price is in sats.
    pub fn msat(&self) -> Option<Msat> {
        match self {
            Price::Sats(m) => Some(*m),
            Price::Fiat(_) => None,
        }
    }

    pub fn is_zero(&self) -> bool {
        match self {
            Price::Sats(m) => *m == Msat::ZERO,
            Price::Fiat(f) => f.minor == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiat_prices_parse_exactly_and_refuse_nonsense() {
        let f = Fiat::parse("2.5", "eur").unwrap();
        assert_eq!(f.minor(), 250);
        assert_eq!(f.amount_str(), "2.50");
        assert_eq!(f.to_string(), "2.50 EUR");
        assert_eq!(Fiat::parse("3", "USD").unwrap().amount_str(), "3.00");
        assert_eq!(Fiat::parse("0.07", "CHF").unwrap().minor(), 7);
        for bad in ["", "2.505", "-1", "1e3", "2,50", ".5", "abc"] {
            assert!(Fiat::parse(bad, "EUR").is_err(), "{bad}");
        }
        assert!(Fiat::parse("1", "EURO").is_err());
        assert!(Fiat::parse("1", "BTC").is_err());
        assert!(Fiat::parse("99999999999999999999", "EUR").is_err());
        assert_eq!(Price::Fiat(f).display(), "2.50 EUR");
    }

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
    fn a_share_rounds_up_to_a_whole_sat_in_the_customers_favour_and_never_exceeds_the_whole() {
        let price = Msat::from_sat(600).unwrap();
        // 180 of 300 ml undelivered: 60 % of 600 sats.
        assert_eq!(price.share_rounded_up(180, 300), Msat::from_sat(360));
        // 1 of 3 of 1000 sats is 333.33…: the customer gets 334.
        let k = Msat::from_sat(1000).unwrap();
        assert_eq!(k.share_rounded_up(1, 3), Msat::from_sat(334));
        assert_eq!(k.share_rounded_up(3, 3), Some(k));
        assert_eq!(k.share_rounded_up(0, 3), Some(Msat::ZERO));
        // An invoice of 2,100.5 sats: the whole is exactly that, not 2,101 sats.
        let odd = Msat::from_msat(2_100_500);
        assert_eq!(odd.share_rounded_up(7, 7), Some(odd));
        assert_eq!(odd.share_rounded_up(1, 2), Msat::from_sat(1051));
        assert_eq!(k.share_rounded_up(4, 3), None);
        assert_eq!(k.share_rounded_up(1, 0), None);
        let big = Msat::from_msat(u64::MAX);
        assert_eq!(big.share_rounded_up(u64::MAX, u64::MAX), Some(big));
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
