//! Laravel's rules, with Laravel's meaning.

use cap_egg::Rules;

fn rules(text: &str) -> Rules {
    Rules::parse(text.split('|')).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn passes(rule_text: &str, value: &str) -> bool {
    rules(rule_text).check(value).is_ok()
}

#[test]
fn max_min_and_between_count_characters_for_strings() {
    assert!(passes("string|max:5", "abcde"));
    assert!(!passes("string|max:5", "abcdef"));
    assert!(passes("string|max:3", "äöü"), "characters, not bytes");
    assert!(!passes("string|min:3", "ab"));
    assert!(passes("string|between:1,6", "latest"));
    assert!(!passes("string|between:3,15", "1"));
    assert!(
        passes("required|string|min:0|max:65535", "15"),
        "length of \"15\" is 2"
    );
}

#[test]
fn max_min_and_between_compare_values_under_a_numeric_rule() {
    assert!(passes("required|integer|max:128", "128"));
    assert!(!passes("required|integer|max:128", "129"));
    assert!(passes("required|numeric|between:1,256", "256"));
    assert!(!passes("required|numeric|between:1,80", "81"));
    assert!(passes("required|string|integer|max:16", "16"));
    assert!(!passes("required|integer|between:1025,65535", "80"));
    assert!(passes("int|min:10", "10"), "int is an alias of integer");
}

#[test]
fn size_means_exact_length_for_strings() {
    assert!(passes("required|string|alpha_num|size:32", &"A".repeat(32)));
    assert!(!passes(
        "required|string|alpha_num|size:32",
        &"A".repeat(31)
    ));
}

#[test]
fn required_refuses_empty_and_nullable_lets_empty_through() {
    assert!(!passes("required|string", ""));
    assert!(!passes("required|string", "   "));
    assert!(passes("nullable|string|max:20", ""));
    assert!(passes("nullable|integer", ""));
    assert!(passes("present", ""));
}

#[test]
fn numeric_and_integer_follow_php() {
    for ok in ["1", "-1.5", "+3", " 4 ", "1e3", ".5"] {
        assert!(passes("numeric", ok), "{ok}");
    }
    for bad in ["abc", "0x1A", "1e", "--1"] {
        assert!(!passes("numeric", bad), "{bad}");
    }
    for ok in ["0", "42", "-7", "+7"] {
        assert!(passes("integer", ok), "{ok}");
    }
    for bad in ["1.0", "007", "1e3", "99999999999999999999"] {
        assert!(!passes("integer", bad), "{bad}");
    }
}

#[test]
fn boolean_accepts_zero_and_one() {
    assert!(passes("required|boolean", "0"));
    assert!(passes("required|boolean", "1"));
    assert!(!passes("required|boolean", "true"));
}

#[test]
fn in_digits_between_alpha_dash_alpha_num_and_url_mean_what_laravel_means() {
    assert!(passes("in:recommended,latest", "latest"));
    assert!(!passes("in:recommended,latest", "beta"));
    assert!(passes(r#"in:"a,b",c"#, "a,b"), "quoted parameters");
    assert!(passes("digits_between:1,4", "1234"));
    assert!(!passes("digits_between:1,4", "12345"));
    assert!(!passes("digits_between:1,4", "-12"));
    assert!(passes("alpha_dash", "de_dust2-x"));
    assert!(!passes("alpha_dash", "de dust"));
    assert!(passes("alpha_num", "Straße9"));
    assert!(!passes("alpha_num", "a_b"));
    assert!(passes("url", "https://minetest.net"));
    assert!(!passes("url", "minetest.net"));
}

#[test]
fn regex_rules_are_pcre_delimited_patterns() {
    let jar = r"required|regex:/^([\w\d._-]+)(\.jar)$/";
    assert!(passes(jar, "server.jar"));
    assert!(!passes(jar, "server.zip"));
    assert!(!passes(jar, "a b.jar"));
    assert!(passes("regex:/^abc$/i", "ABC"));
    assert!(passes("regex:#^\\d+$#", "123"));
}

#[test]
fn an_empty_rule_part_is_skipped_as_laravel_skips_it() {
    assert_eq!(
        rules("required|string|").to_pipe_string(),
        "required|string"
    );
}

#[test]
fn a_rule_with_bad_parameters_is_refused_by_name() {
    let err = Rules::parse(["max:lots"]).expect_err("refused");
    assert!(err.contains("\"max\""), "{err}");
    let err = Rules::parse(["between:1"]).expect_err("refused");
    assert!(err.contains("\"between\""), "{err}");
    let err = Rules::parse(["string:x"]).expect_err("refused");
    assert!(err.contains("\"string\""), "{err}");
}
