//! The ROBERT protocol core: everything a server and a phone must agree on,
//! byte for byte, with no I/O.
//!
//! ROBERT (ROBust and privacy-presERving proximity Tracing) is the protocol of
//! France's StopCovid / TousAntiCovid. This crate implements it as the
//! reference server deployed it (`../shared/docs/protocol.md`):
//!
//! | module | protocol concept |
//! |---|---|
//! | [`time`] | NTP seconds, 900-second epochs from the service start, Time16 / Time32 |
//! | [`keys`] | K_S (per day), K_G, K_A, K_A_Tuples, the KEK |
//! | [`id_a`], [`ebid`], [`ecc`] | ID_A, the EBID (SKINNY-64-192), the encrypted country code |
//! | [`hello`], [`mac`] | the 16-byte HELLO and the HELLO / request MACs with salts 0x01–0x04 |
//! | [`registration`] | P-256 ECDH and the `"mac"` / `"tuples"` key derivation |
//! | [`tuples`] | the encrypted tuple bundle and its generation |
//! | [`contact`] | server-side validation of uploaded contacts |
//! | [`scoring`] | risk scoring v2 / v0, aggregation and risk evaluation |
//! | [`filter`] | the phone's on-device proximity filter |
//! | [`crypto`] | the hot paths' SHA-256 and AES back ends (SHA-NI, AES-NI, portable) |
//!
//! # Invariants
//!
//! * No I/O, no async, no global state: time arrives as [`time::NtpSeconds`]
//!   values, randomness as a `&mut impl rand_core::CryptoRng` argument.
//! * Every parser returns a typed [`Error`] on bad input; none panics.
//! * Secrets are zeroized on drop, compared in constant time, and print as
//!   `Key { .. }`.
//!
//! # Example: a phone's HELLO, checked as the server does
//!
//! ```
//! use robert_core::{ebid::Ebid, ecc::{CountryCode, Ecc}, hello::Hello, id_a::IdA};
//! use robert_core::keys::{KeyA, KeyG, KeyS};
//! use robert_core::time::{Epoch, NtpSeconds, ServiceStart};
//!
//! let start = ServiceStart::REFERENCE;
//! let k_s = KeyS::from_bytes([7; 24]);
//! let k_g = KeyG::from_slice(&[9; 32])?;
//! let k_a = KeyA::from_bytes([3; 32]);
//! let now = NtpSeconds(3_799_958_400 + 66_855 * 900 + 42);
//! let epoch = start.epoch_at(now);
//! let ebid = Ebid::encrypt(&k_s, epoch, IdA([1, 2, 3, 4, 5]))?;
//! let ecc = Ecc::encrypt(&k_g, &ebid, CountryCode::FRANCE);
//! let hello = Hello::new(&k_a, ecc, ebid, now.time16());
//!
//! let received = Hello::from_bytes(&hello.to_bytes())?;
//! assert_eq!(received.ecc.decrypt(&k_g, &received.ebid), CountryCode::FRANCE);
//! assert_eq!(received.ebid.decrypt(&k_s).epoch, Epoch(66_855));
//! assert!(received.verify_mac(&k_a));
//! # Ok::<(), robert_core::Error>(())
//! ```

pub mod b64;
pub mod calibration;
pub mod contact;
pub mod crypto;
pub mod ebid;
pub mod ecc;
pub mod error;
pub mod filter;
pub mod hello;
pub mod id_a;
pub mod keys;
pub mod mac;
pub mod registration;
pub mod scoring;
pub mod time;
pub mod tuples;

pub use error::Error;
