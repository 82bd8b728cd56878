use serde_json::json;

use super::*;

fn render(source: &str, data: &Value) -> Result<String, String> {
    let mut r = Renderer::default();
    r.register("t", source).map_err(|e| e.to_string())?;
    r.render_value("t", data)
}

#[test]
fn values_are_escaped_and_helpers_behave() {
    let data = json!({"s": "a: b", "n": 3, "l": ["x", "y"], "e": "", "secs": 90});
    assert_eq!(render("v: {{s}}", &data).unwrap(), "v: 'a: b'");
    assert_eq!(render("v: {{toYaml n}}", &data).unwrap(), "v: 3");
    assert_eq!(render("v: {{toYaml l}}", &data).unwrap(), "v: ['x', 'y']");
    assert_eq!(render("v: {{quote n}}", &data).unwrap(), "v: '3'");
    assert_eq!(render("v: {{upper s}}", &data).unwrap(), "v: 'A: B'");
    assert_eq!(render("v: {{lower \"X\"}}", &data).unwrap(), "v: 'x'");
    assert_eq!(render("v: {{join l \", \"}}", &data).unwrap(), "v: 'x, y'");
    assert_eq!(render("v: {{default e \"z\"}}", &data).unwrap(), "v: 'z'");
    assert_eq!(
        render("v: {{default s \"z\"}}", &data).unwrap(),
        "v: 'a: b'"
    );
    assert_eq!(render("v: {{duration secs}}", &data).unwrap(), "v: '1m30s'");
    assert_eq!(
        render("a:\n{{#indent 2}}b: {{s}}\nc: 1\n{{/indent}}", &data).unwrap(),
        "a:\n  b: 'a: b'\n  c: 1\n"
    );
}

#[test]
fn strict_mode_refuses_missing_fields() {
    assert!(render("v: {{missing}}", &json!({})).is_err());
    assert!(render("v: {{toYaml missing}}", &json!({})).is_err());
}

#[test]
fn constructs_that_bypass_escaping_are_refused_at_registration() {
    let mut r = Renderer::default();
    for bad in [
        "{{{x}}}",
        "{{~{x}~}}",
        "{{&x}}",
        "{{{{raw}}}}{{x}}{{{{/raw}}}}",
        "\\{{x}}",
    ] {
        assert!(
            matches!(r.register("bad", bad), Err(DocumentError::Unescaped { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        r.register("big", &"x".repeat(MAX_DOCUMENT_BYTES + 1)),
        Err(DocumentError::TooLarge)
    ));
    assert!(matches!(
        r.register("syntax", "{{#each x}}"),
        Err(DocumentError::Syntax(_))
    ));
}
