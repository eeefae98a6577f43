//! Known-answer tests: the SKINNY paper (Appendix B.1) and robert-server,
//! on every backend this machine can run.

use skinny::cipher::{self, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use skinny::{Backend, Skinny64_64, Skinny64_128, Skinny64_192};

fn check<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
    cipher: &C,
    key: &str,
    pt: &str,
    ct: &str,
) {
    let pt_bytes = hex::decode(pt).expect("hex plaintext");
    let mut block = cipher::Block::<C>::try_from(pt_bytes.as_slice()).expect("8-byte block");
    cipher.encrypt_block(&mut block);
    assert_eq!(hex::encode(&block), ct, "encrypt under {key}");
    cipher.decrypt_block(&mut block);
    assert_eq!(hex::encode(&block), pt, "decrypt under {key}");
}

macro_rules! vector {
    ($test:ident, $ty:ty, $key:literal, $pt:literal, $ct:literal) => {
        #[test]
        fn $test() {
            let key = hex::decode($key).unwrap();
            check(&<$ty>::new_from_slice(&key).unwrap(), $key, $pt, $ct);
            let mut ran = 0;
            for backend in Backend::ALL {
                let Some(c) = <$ty>::new_with_backend(key.as_slice().try_into().unwrap(), backend)
                else {
                    continue;
                };
                assert_eq!(c.backend(), backend);
                check(&c, $key, $pt, $ct);
                // Same vector through the u64 and batch entry points.
                let pt = u64::from_str_radix($pt, 16).unwrap();
                let ct = u64::from_str_radix($ct, 16).unwrap();
                assert_eq!(c.encrypt_u64_traced(pt), (ct, backend));
                assert_eq!(c.decrypt_u64_traced(ct), (pt, backend));
                let mut batch = vec![pt; 300];
                assert_eq!(c.encrypt_batch_traced(&mut batch), backend);
                assert!(batch.iter().all(|&b| b == ct));
                ran += 1;
            }
            assert!(ran >= 1);
        }
    };
}

vector!(
    paper_skinny64_64,
    Skinny64_64,
    "f5269826fc681238",
    "06034f957724d19d",
    "bb39dfb2429b8ac7"
);
vector!(
    paper_skinny64_128,
    Skinny64_128,
    "9eb93640d088da6376a39d1c8bea71e1",
    "cf16cfe8fd0f98aa",
    "6ceda1f43de92b9e"
);
vector!(
    paper_skinny64_192,
    Skinny64_192,
    "ed00c85b120d68618753e24bfd908f60b2dbb41b422dfcd0",
    "530c61d35e8663c3",
    "dd2cf1a8f330303c"
);
vector!(
    robert_second_vector,
    Skinny64_192,
    "c85b120d68e24bfd906187538f60b2dbb41b422dfcd0ed00",
    "530c61d35e8663c3",
    "4bdcafff467a8029"
);
