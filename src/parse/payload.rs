//! The domain payload and its `properties` object, read by the validating
//! scanner (`scan`) when it can and by serde_json otherwise: the
//! captures ([`Row`], [`PropFields`]) are the same either way, and the
//! serde-only readers are the reference the tests and the `payload` fuzz
//! target compare the scanner with.

use super::json::{from_str, PropFields, Props, Row, Shape};
use super::scan::Scan;

impl<'a> Row<'a> {
    /// The scanner's capture of a row object, exactly as its
    /// [`FromMap`](super::json::FromMap) captures it; `None` for what it
    /// leaves to the serde path (a schema wrapper's keys among them).
    pub(crate) fn scan(s: &mut Scan<'a>) -> Option<Self> {
        let mut r = Row::default();
        s.object(|s, key| {
            r.wrapper.n_keys += 1;
            match key {
                "id" => r.id = s.val()?,
                "experiment_id" => r.experiment_id = s.val()?,
                "user_id" => r.user_id = s.val()?,
                "variant_id" => r.variant_id = s.val()?,
                "variant_key" => r.variant_key = s.val()?,
                "assigned_at" => r.assigned_at = s.val()?,
                "event_type" => r.event_type = s.val()?,
                "timestamp" => r.timestamp = s.val()?,
                "session_id" => r.session_id = s.val()?,
                "properties" => r.properties = Props::from_text(s.raw()?),
                "schema" | "payload" => return None,
                _ => {
                    s.raw()?;
                }
            }
            Some(())
        })?;
        Some(r)
    }

    /// A whole JSON text as a row: by the scanner when it can, else by
    /// serde_json; [`Shape::Other`] for invalid JSON.
    pub fn parse_text(text: &'a str) -> Shape<'a, Row<'a>> {
        Self::scan_text(text)
            .map(Shape::Object)
            .unwrap_or_else(|| Self::parse_text_serde(text))
    }

    /// The scanner's part of [`Self::parse_text`]: `None` for what it
    /// leaves to serde_json.
    pub(crate) fn scan_text(text: &'a str) -> Option<Row<'a>> {
        Scan::whole_object(text, Row::scan)
    }

    /// [`Self::parse_text`] with serde_json alone: the scanner's reference.
    pub fn parse_text_serde(text: &'a str) -> Shape<'a, Row<'a>> {
        from_str(text).unwrap_or(Shape::Other)
    }
}

impl<'a> PropFields<'a> {
    /// The scanner's capture of a properties object, exactly as its
    /// [`FromMap`](super::json::FromMap) captures it; `None` for what it
    /// leaves to serde_json.
    pub(crate) fn scan(s: &mut Scan<'a>) -> Option<Self> {
        let mut p = PropFields::default();
        s.object(|s, key| {
            match key {
                "page" => p.page = s.val()?,
                "device" => p.device = s.val()?,
                "browser" => p.browser = s.val()?,
                "value" => p.value = s.val()?,
                "score" => p.score = s.val()?,
                _ => {
                    s.raw()?;
                }
            }
            Some(())
        })?;
        Some(p)
    }

    /// The fields of a properties object's text: by the scanner when it
    /// can, else by serde_json; `None` when the text is not an object.
    pub fn parse_text(text: &'a str) -> Option<PropFields<'a>> {
        Scan::whole_object(text, PropFields::scan).or_else(|| Self::parse_text_serde(text))
    }

    /// [`Self::parse_text`] with serde_json alone: the scanner's reference.
    pub fn parse_text_serde(text: &'a str) -> Option<PropFields<'a>> {
        match from_str::<Shape<PropFields>>(text) {
            Ok(Shape::Object(p)) => Some(p),
            _ => None,
        }
    }
}
