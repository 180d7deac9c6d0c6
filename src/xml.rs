//! Small XML toolkit shared by the SOAP clients and the simulator.
//!
//! Reading builds a tree keyed by *local* element names, because vendors vary their
//! namespace prefixes between operations; the tree is bounded in depth and size, so a
//! hostile document can neither exhaust the stack of the recursive walks (nor of the
//! tree's drop) nor multiply its size in memory. Writing goes through quick-xml's writer
//! so every text value and attribute is escaped.

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

/// Deepest element nesting read; SOAP answers nest about ten deep.
pub const MAX_DEPTH: usize = 64;
/// Most elements read from one document; the largest documented answers hold hundreds.
pub const MAX_ELEMENTS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("XML document has no root element")]
    Empty,
    #[error("XML document nests elements deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("XML document has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("missing element <{0}>")]
    Missing(String),
    #[error("element <{element}> has an invalid value {value:?}: {reason}")]
    Invalid {
        element: String,
        value: String,
        reason: String,
    },
}

/// One element of a parsed document; names are local names (prefixes dropped).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Concatenated, unescaped character data directly inside this element, trimmed.
    pub text: String,
}

impl Element {
    pub fn parse(xml: &str) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().trim_text(false);
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
        let mut elements = 0usize;
        let mut count = || {
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(XmlError::TooManyElements);
            }
            Ok(())
        };
        loop {
            let event = reader.read_event().map_err(|e| malformed(&e))?;
            match event {
                Event::Start(start) => {
                    count()?;
                    if stack.len() >= MAX_DEPTH {
                        return Err(XmlError::TooDeep);
                    }
                    stack.push(open(&start)?);
                }
                Event::Empty(start) => {
                    count()?;
                    let el = open(&start)?;
                    close(el, &mut stack, &mut root)?;
                }
                Event::End(_) => {
                    let mut el = stack
                        .pop()
                        .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                    el.text = el.text.trim().to_string();
                    close(el, &mut stack, &mut root)?;
                }
                Event::Text(text) => {
                    if let Some(top) = stack.last_mut() {
                        top.text
                            .push_str(&text.xml_content().map_err(|e| malformed(&e))?);
                    }
                }
                Event::CData(data) => {
                    if let Some(top) = stack.last_mut() {
                        top.text
                            .push_str(&data.xml_content().map_err(|e| malformed(&e))?);
                    }
                }
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref().map_err(|e| malformed(&e))? {
                        Some(ch) => ch.to_string(),
                        None => {
                            let name = reference.decode().map_err(|e| malformed(&e))?;
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| {
                                    XmlError::Malformed(format!("unknown entity &{name};"))
                                })?
                                .to_string()
                        }
                    };
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&resolved);
                    }
                }
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
        if !stack.is_empty() {
            return Err(XmlError::Malformed(
                "unclosed element at end of input".into(),
            ));
        }
        root.ok_or(XmlError::Empty)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child names from this element.
    pub fn path(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// First element with this name in a depth-first walk, this element included.
    pub fn descendant(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.descendant(name))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Text of the child at `path`, or a `Missing` error naming the path.
    pub fn text_at(&self, path: &[&str]) -> Result<&str, XmlError> {
        self.path(path)
            .map(|e| e.text.as_str())
            .ok_or_else(|| XmlError::Missing(path.join("/")))
    }

    /// Parses the text of the child at `path` with `FromStr`.
    pub fn parse_at<T>(&self, path: &[&str]) -> Result<T, XmlError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let raw = self.text_at(path)?;
        raw.parse().map_err(|e: T::Err| XmlError::Invalid {
            element: path.join("/"),
            value: raw.to_string(),
            reason: e.to_string(),
        })
    }

    /// Like `parse_at`, but an absent or empty element is `None`.
    pub fn parse_opt<T>(&self, path: &[&str]) -> Result<Option<T>, XmlError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.path(path) {
            Some(el) if !el.text.is_empty() => self.parse_at(path).map(Some),
            _ => Ok(None),
        }
    }

    /// A copy with namespace declarations dropped and attributes sorted, so two documents
    /// that differ only in prefixes, declarations or attribute order compare equal.
    pub fn canonical(&self) -> Element {
        let mut attrs: Vec<(String, String)> = self
            .attrs
            .iter()
            .filter(|(k, _)| k != "xmlns" && !k.starts_with("xmlns:"))
            .cloned()
            .collect();
        attrs.sort();
        Element {
            name: self.name.clone(),
            attrs,
            children: self.children.iter().map(Element::canonical).collect(),
            text: self.text.clone(),
        }
    }
}

fn open(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed(e.to_string()))?;
        let key = attr.key;
        // Keep xmlns declarations under their full name; every other attribute by local name.
        let key = if key.as_ref().starts_with(b"xmlns") {
            String::from_utf8_lossy(key.as_ref()).into_owned()
        } else {
            String::from_utf8_lossy(key.local_name().as_ref()).into_owned()
        };
        let value = attr
            .unescape_value()
            .map_err(|e| XmlError::Malformed(e.to_string()))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => return Err(XmlError::Malformed("more than one root element".into())),
    }
    Ok(())
}

/// Builds an XML document; every text value and attribute value is escaped by quick-xml.
pub struct XmlWriter {
    inner: Writer<Vec<u8>>,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

// Writing into a Vec<u8> cannot fail, so the io::Result of quick-xml's writer is discharged here.
const IN_MEMORY: &str = "writing XML into memory cannot fail";

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            inner: Writer::new(Vec::new()),
        }
    }

    pub fn start(&mut self, name: &str) -> &mut Self {
        self.start_with(name, &[])
    }

    pub fn start_with(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        let mut start = BytesStart::new(name);
        for attr in attrs {
            start.push_attribute(*attr);
        }
        self.inner
            .write_event(Event::Start(start))
            .expect(IN_MEMORY);
        self
    }

    pub fn end(&mut self, name: &str) -> &mut Self {
        self.inner
            .write_event(Event::End(BytesEnd::new(name)))
            .expect(IN_MEMORY);
        self
    }

    /// Character data inside the open element, escaped.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.inner
            .write_event(Event::Text(BytesText::new(value)))
            .expect(IN_MEMORY);
        self
    }

    /// `<name>value</name>` with the value escaped.
    pub fn leaf(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.start(name);
        self.text(&value.to_string());
        self.end(name)
    }

    /// `<name/>`
    pub fn empty(&mut self, name: &str) -> &mut Self {
        self.inner
            .write_event(Event::Empty(BytesStart::new(name)))
            .expect(IN_MEMORY);
        self
    }

    /// `<name><AuthenticatedKey>key</AuthenticatedKey><ID>id</ID></name>`-style helper
    /// for elements made only of leaves.
    pub fn group(&mut self, name: &str, leaves: &[(&str, &dyn std::fmt::Display)]) -> &mut Self {
        self.start(name);
        for (leaf, value) in leaves {
            self.leaf(leaf, value);
        }
        self.end(name)
    }

    pub fn finish(self) -> String {
        // quick-xml only writes what it was given, and every input here is a &str.
        String::from_utf8_lossy(&self.inner.into_inner()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_local_name_and_unescapes() {
        let el = Element::parse(
            r#"<s:Envelope xmlns:s="urn:x"><s:Body><a:Op xmlns:a="urn:y" i:type="T">
               <a:Name>5&lt;5&amp;5&apos;5</a:Name><Empty/></a:Op></s:Body></s:Envelope>"#,
        )
        .unwrap();
        let op = el.path(&["Body", "Op"]).unwrap();
        assert_eq!(op.attr("type"), Some("T"));
        assert_eq!(op.text_at(&["Name"]).unwrap(), "5<5&5'5");
        assert_eq!(op.child("Empty").map(|e| e.text.as_str()), Some(""));
        assert!(el.descendant("Name").is_some());
    }

    #[test]
    fn writer_escapes_every_value() {
        let mut w = XmlWriter::new();
        w.start_with("Op", &[("a", "x\"<y")])
            .leaf("Name", "5<5&5'5")
            .empty("Nothing")
            .end("Op");
        let xml = w.finish();
        assert!(!xml.contains("5<5"), "{xml}");
        let el = Element::parse(&xml).unwrap();
        assert_eq!(el.text_at(&["Name"]).unwrap(), "5<5&5'5");
        assert_eq!(el.attr("a"), Some("x\"<y"));
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(Element::parse("<a><b></a>").is_err());
        assert!(Element::parse("<a>").is_err());
        assert!(matches!(Element::parse(""), Err(XmlError::Empty)));
        assert!(Element::parse("<a/><b/>").is_err());
    }

    #[test]
    fn documents_are_bounded_in_depth_and_size() {
        let nested = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        assert!(Element::parse(&nested(MAX_DEPTH)).is_ok());
        assert!(matches!(
            Element::parse(&nested(MAX_DEPTH + 1)),
            Err(XmlError::TooDeep)
        ));
        // Deep enough to overflow the stack of a recursive walk or drop, were it read.
        assert!(matches!(
            Element::parse(&nested(1_000_000)),
            Err(XmlError::TooDeep)
        ));
        let wide = |n: usize| format!("<r>{}</r>", "<a/>".repeat(n));
        assert!(Element::parse(&wide(MAX_ELEMENTS - 1)).is_ok());
        assert!(matches!(
            Element::parse(&wide(MAX_ELEMENTS)),
            Err(XmlError::TooManyElements)
        ));
    }

    #[test]
    fn canonical_ignores_namespaces_and_attribute_order() {
        let a = Element::parse(r#"<x:A xmlns:x="urn:1" b="2" c="3"><B>t</B></x:A>"#).unwrap();
        let b = Element::parse(r#"<A c="3" b="2">  <B> t </B></A>"#).unwrap();
        assert_eq!(a.canonical(), b.canonical());
    }
}
