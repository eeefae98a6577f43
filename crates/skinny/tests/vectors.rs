//! Known-answer tests: the SKINNY paper (Appendix B.1) and robert-server.

use skinny::cipher::{self, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use skinny::{Skinny64_64, Skinny64_128, Skinny64_192};

fn check<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(key: &str, pt: &str, ct: &str) {
    let cipher = C::new_from_slice(&hex::decode(key).unwrap()).unwrap();
    let mut block = cipher::Block::<C>::try_from(hex::decode(pt).unwrap().as_slice()).unwrap();
    cipher.encrypt_block(&mut block);
    assert_eq!(hex::encode(&block), ct, "encrypt under {key}");
    cipher.decrypt_block(&mut block);
    assert_eq!(hex::encode(&block), pt, "decrypt under {key}");
}

#[test]
fn paper_skinny64_64() {
    check::<Skinny64_64>("f5269826fc681238", "06034f957724d19d", "bb39dfb2429b8ac7");
}

#[test]
fn paper_skinny64_128() {
    check::<Skinny64_128>("9eb93640d088da6376a39d1c8bea71e1", "cf16cfe8fd0f98aa", "6ceda1f43de92b9e");
}

#[test]
fn paper_skinny64_192() {
    check::<Skinny64_192>(
        "ed00c85b120d68618753e24bfd908f60b2dbb41b422dfcd0",
        "530c61d35e8663c3",
        "dd2cf1a8f330303c",
    );
}

#[test]
fn robert_second_vector() {
    check::<Skinny64_192>(
        "c85b120d68e24bfd906187538f60b2dbb41b422dfcd0ed00",
        "530c61d35e8663c3",
        "4bdcafff467a8029",
    );
}
