use super::*;

#[test]
fn usernames() {
    assert!(valid_username("dr.martin@cabinet-75"));
    assert!(!valid_username(""));
    assert!(!valid_username("a b"));
    assert!(!valid_username(&"a".repeat(65)));
}

#[test]
fn password_hash_round_trip() {
    let h = hash_password("correct horse battery").unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(verify_password("correct horse battery", &h));
    assert!(!verify_password("wrong horse battery", &h));
    assert!(!verify_password("x", "not a phc string"));
}
