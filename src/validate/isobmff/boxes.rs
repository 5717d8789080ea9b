//! Reading boxes held in memory (the insides of `meta` and `moov`): a bounds-checked cursor and an
//! iterator over the child boxes of a box, both refusing, never panicking, on short input.

use super::super::Invalid;

/// A four-character code as text for messages: `ispe`, or escapes for bytes that are not ASCII.
pub fn fourcc(t: [u8; 4]) -> String {
    t.iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

/// A cursor over the content of one box; every read checks the length and names the box.
pub struct Rd<'a> {
    b: &'a [u8],
    p: usize,
    what: [u8; 4],
}

impl<'a> Rd<'a> {
    pub fn new(b: &'a [u8], what: [u8; 4]) -> Rd<'a> {
        Rd { b, p: 0, what }
    }

    pub fn short(&self) -> Invalid {
        Invalid::corrupt(format!(
            "the {} box is cut short ({} bytes)",
            fourcc(self.what),
            self.b.len()
        ))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        let end = self.p.checked_add(n).ok_or_else(|| self.short())?;
        let s = self.b.get(self.p..end).ok_or_else(|| self.short())?;
        self.p = end;
        Ok(s)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.b.get(self.p..).unwrap_or(&[]);
        self.p = self.b.len();
        s
    }

    pub fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Invalid> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, Invalid> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Invalid> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    pub fn fourcc(&mut self) -> Result<[u8; 4], Invalid> {
        let s = self.take(4)?;
        Ok([s[0], s[1], s[2], s[3]])
    }

    /// A field of 0, 4 or 8 bytes (iloc's offset and length sizes); 0 bytes read as 0.
    pub fn sized(&mut self, n: u8) -> Result<u64, Invalid> {
        match n {
            0 => Ok(0),
            4 => self.u32().map(u64::from),
            8 => self.u64(),
            _ => Err(self.short()),
        }
    }

    /// A u16 or, when `wide`, a u32 (item IDs in version 0 or later boxes).
    pub fn id(&mut self, wide: bool) -> Result<u32, Invalid> {
        if wide {
            self.u32()
        } else {
            self.u16().map(u32::from)
        }
    }

    /// A FullBox's version and flags.
    pub fn full(&mut self) -> Result<(u8, u32), Invalid> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0xff_ffff))
    }
}

/// One child box: its type, its content (after the header) and its offset in the parent.
pub struct Child<'a> {
    pub typ: [u8; 4],
    pub body: &'a [u8],
}

/// The child boxes that tile `b` exactly (size 0 = to the end of `b`); a box that overruns its
/// parent is refused, naming the parent.
pub struct Children<'a> {
    b: &'a [u8],
    p: usize,
    parent: [u8; 4],
}

pub fn children(b: &[u8], parent: [u8; 4]) -> Children<'_> {
    Children { b, p: 0, parent }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>, Invalid>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.b.get(self.p..)?;
        if rest.is_empty() {
            return None;
        }
        let r = parse_child(rest, self.parent);
        match &r {
            Ok((_, used)) => self.p += used,
            Err(_) => self.p = self.b.len(),
        }
        Some(r.map(|(c, _)| c))
    }
}

fn parse_child(rest: &[u8], parent: [u8; 4]) -> Result<(Child<'_>, usize), Invalid> {
    let bad = |what: String| Invalid::corrupt(format!("a box inside {} {what}", fourcc(parent)));
    if rest.len() < 8 {
        return Err(bad(format!(
            "has a header cut short ({} bytes left)",
            rest.len()
        )));
    }
    let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let typ = [rest[4], rest[5], rest[6], rest[7]];
    let (size, hdr) = match size32 {
        0 => (rest.len() as u64, 8),
        1 => {
            let Some(l) = rest.get(8..16) else {
                return Err(bad(format!(
                    "({}) has its largesize cut short",
                    fourcc(typ)
                )));
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(l);
            (u64::from_be_bytes(a), 16)
        }
        n => (u64::from(n), 8),
    };
    if size < hdr as u64 {
        return Err(bad(format!(
            "({}) has a size of {size}, less than its header",
            fourcc(typ)
        )));
    }
    if size > rest.len() as u64 {
        return Err(bad(format!(
            "({}) of {size} bytes runs past its end ({} bytes left)",
            fourcc(typ),
            rest.len()
        )));
    }
    let size = size as usize;
    Ok((
        Child {
            typ,
            body: &rest[hdr..size],
        },
        size,
    ))
}
