//! ECC: the encrypted country code (protocol.md §4.3).
//!
//! ```text
//! ECC = AES-ECB(K_G, EBID ‖ 0^64)[0] XOR CC
//! CC  = AES-ECB(K_G, EBID ‖ 0^64)[0] XOR ECC      (the same operation)
//! ```
//!
//! This equals the spec's AES-OFB description with IV = EBID ‖ 0^64.

use crate::ebid::Ebid;
use crate::keys::KeyG;
use crate::{Error, b64};

/// A country code: the international telephone prefix as one byte
/// (France 33 = 0x21, Germany 49 = 0x31).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode(pub u8);

impl CountryCode {
    /// France (33), the reference server's country.
    pub const FRANCE: Self = Self(33);
}

impl Default for CountryCode {
    fn default() -> Self {
        Self::FRANCE
    }
}

/// An ECC byte as broadcast in HELLO messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ecc(pub u8);

impl Ecc {
    /// Encrypts a country code for an EBID.
    pub fn encrypt(key: &KeyG, ebid: &Ebid, cc: CountryCode) -> Self {
        Self(key.ecc_mask(&ebid.0) ^ cc.0)
    }

    /// Decrypts the country code. Any byte decrypts to some code: a forged or
    /// foreign ECC shows as a code other than the server's.
    pub fn decrypt(self, key: &KeyG, ebid: &Ebid) -> CountryCode {
        CountryCode(key.ecc_mask(&ebid.0) ^ self.0)
    }

    /// Base64 form (4 characters ending in `==`).
    pub fn to_base64(self) -> String {
        b64::encode([self.0])
    }

    /// Parses the base64 form.
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        b64::decode_array::<1>(s, "ecc").map(|[b]| Self(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TV-4: AES-192 K_G from the develop branch's CountryCodeTest.
    #[test]
    fn tv4_aes192() {
        let kg = KeyG::from_slice(b"Some example 256 bits fe").unwrap();
        let rows = [
            ("v4lOYvwWzbc=", 33, "uQ=="),
            ("s5MNHJaWmiM=", 33, "hg=="),
            ("v4lOYvwWzbc=", 49, "qQ=="),
            ("s5MNHJaWmiM=", 49, "lg=="),
        ];
        for (ebid, cc, ecc) in rows {
            let ebid = Ebid::from_base64(ebid).unwrap();
            let e = Ecc::encrypt(&kg, &ebid, CountryCode(cc));
            assert_eq!(e.to_base64(), ecc);
            assert_eq!(
                Ecc::from_base64(ecc).unwrap().decrypt(&kg, &ebid),
                CountryCode(cc)
            );
        }
        let mask = kg.ecc_mask(&Ebid::from_base64("v4lOYvwWzbc=").unwrap().0);
        assert_eq!(mask, 0x98);
    }

    /// TV-5: AES-256 K_G with the production-size keys.
    #[test]
    fn tv5_aes256() {
        let kg = KeyG::from_slice(
            &b64::decode("9ZBbyujJnobnh1raCjXpNiAbQ7XnfMyxn17RbuCft7U=", "K_G").unwrap(),
        )
        .unwrap();
        let ebid = Ebid::from_base64("yqfVsPunrqc=").unwrap();
        assert_eq!(kg.ecc_mask(&ebid.0), 0xe3);
        let ecc = Ecc::encrypt(&kg, &ebid, CountryCode::FRANCE);
        assert_eq!(ecc, Ecc(0xc2));
        assert_eq!(ecc.to_base64(), "wg==");
        // Negative case: ECC 0x66 decodes to 0x85 (-123 as a Java byte).
        assert_eq!(Ecc(0x66).decrypt(&kg, &ebid), CountryCode(0x85));
    }
}
