//! Confusion-matrix arithmetic, checked against values computed by hand.

use robert_sim::Confusion;

#[test]
fn rates_by_hand() {
    // 8 at risk (6 alerted), 92 not at risk (3 alerted).
    let c = Confusion {
        tp: 6,
        fn_: 2,
        fp: 3,
        tn: 89,
    };
    assert_eq!(c.total(), 100);
    assert_eq!(c.actual_positives(), 8);
    assert_eq!(c.predicted_positives(), 9);
    assert_eq!(c.recall(), Some(0.75));
    assert_eq!(c.precision(), Some(6.0 / 9.0));
    assert_eq!(c.specificity(), Some(89.0 / 92.0));
    assert_eq!(c.accuracy(), Some(0.95));
    // F1 = 2·6 / (2·6 + 3 + 2) = 12/17.
    assert_eq!(c.f1(), Some(12.0 / 17.0));
}

#[test]
fn undefined_rates_are_none() {
    let nobody = Confusion::default();
    assert_eq!(nobody.recall(), None);
    assert_eq!(nobody.precision(), None);
    assert_eq!(nobody.accuracy(), None);
    // Nobody at risk, nobody alerted: recall and precision undefined,
    // specificity 1.
    let quiet = Confusion {
        tn: 10,
        ..Confusion::default()
    };
    assert_eq!(quiet.recall(), None);
    assert_eq!(quiet.precision(), None);
    assert_eq!(quiet.specificity(), Some(1.0));
    assert_eq!(robert_sim::confusion::percent(None), "—");
    assert_eq!(robert_sim::confusion::percent(Some(0.5)), "50.0 %");
}

#[test]
fn record_and_sum() {
    let mut a = Confusion::default();
    for (truth, alerted) in [
        (true, true),
        (true, false),
        (false, true),
        (false, false),
        (false, false),
    ] {
        a.record(truth, alerted);
    }
    assert_eq!(
        a,
        Confusion {
            tp: 1,
            fn_: 1,
            fp: 1,
            tn: 2
        }
    );
    let b = Confusion {
        tp: 2,
        fp: 0,
        fn_: 3,
        tn: 5,
    };
    let s: Confusion = [a, b].into_iter().sum();
    assert_eq!(
        s,
        Confusion {
            tp: 3,
            fp: 1,
            fn_: 4,
            tn: 7
        }
    );
    assert_eq!(s.recall(), Some(3.0 / 7.0));
}
