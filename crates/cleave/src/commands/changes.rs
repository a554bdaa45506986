//! What changed between two JSON values, as field paths with old and new
//! values: `tests[0].script: "echo a" -> "echo b"`. A cache key's inputs
//! hold whole outputs as JSON; printed as two truncated texts they would
//! look the same, so `cache explain` walks them down to what differs.

use serde_json::Value;

/// One difference: where, the old value, the new value (`None` when the
/// field is absent on that side).
pub(crate) type FieldChange = (String, Option<String>, Option<String>);

/// The leaves that differ between `old` and `new`, under `path`, in the
/// order of their keys.
pub(crate) fn field_changes(path: &str, old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(path, Some(old), Some(new), &mut out);
    out
}

fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(&sub, a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((path.to_string(), a.map(shown), b.map(shown))),
    }
}

/// A leaf as JSON text: strings quoted, so `"1"` and `1` differ visibly.
fn shown(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_fields_are_named_by_path_with_both_values() {
        let old = json!({"name": "a", "tests": [{"script": "echo test-alpha"}], "gone": 1});
        let new = json!({"name": "a", "tests": [{"script": "echo test-beta"}, {"x": true}]});
        let changes = field_changes("", &old, &new);
        assert_eq!(
            changes,
            vec![
                ("gone".into(), Some("1".into()), None),
                (
                    "tests[0].script".into(),
                    Some("\"echo test-alpha\"".into()),
                    Some("\"echo test-beta\"".into())
                ),
                ("tests[1]".into(), None, Some("{\"x\":true}".into())),
            ]
        );
    }
}
