//! A restricted pickle reader for PyTorch checkpoints: it interprets the
//! opcodes `torch.save` writes (protocols 2 to 5) into plain values and never
//! imports or calls anything. Globals are names looked up in an allow-list —
//! the tensor-rebuild functions, the typed storage classes and
//! `collections.OrderedDict` — and any other global stops the reader with its
//! name (a checkpoint is tensors; a pickle that names `os.system` wants to run
//! code). Work and memory are bounded by the input's length: every opcode and
//! every copied value spends fuel.

/// Largest `data.pkl` read: a 1,000-tensor state dict's is ~100 kB.
pub const MAX_PICKLE_BYTES: usize = 64 << 20;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Raw bytes (only their length is kept).
    Bytes(usize),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage(Storage),
    Tensor(TensorRef),
}

/// The globals a state dict may name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    /// A typed storage class (`torch.FloatStorage`, …): its safetensors dtype.
    StorageType(&'static str),
}

/// A storage record (`archive/data/{key}`) with its element type.
#[derive(Clone, Debug, PartialEq)]
pub struct Storage {
    pub dtype: &'static str,
    pub key: String,
    pub numel: u64,
}

/// A tensor: a strided view into a storage (offset and strides in elements).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: Storage,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// Why a pickle was not read.
#[derive(Debug, PartialEq)]
pub enum PickleError {
    /// A global outside the allow-list, as `module.name`.
    Global(String),
    Malformed(String),
}

const STORAGES: &[(&str, &str)] = &[
    ("FloatStorage", "F32"),
    ("HalfStorage", "F16"),
    ("BFloat16Storage", "BF16"),
    ("DoubleStorage", "F64"),
    ("LongStorage", "I64"),
    ("IntStorage", "I32"),
    ("ShortStorage", "I16"),
    ("CharStorage", "I8"),
    ("ByteStorage", "U8"),
    ("BoolStorage", "BOOL"),
    ("ComplexFloatStorage", "C64"),
];

fn global(module: &str, name: &str) -> Result<Global, PickleError> {
    let found = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => Some(Global::RebuildParameterWithState),
        ("torch", _) => STORAGES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, dtype)| Global::StorageType(dtype)),
        _ => None,
    };
    found.ok_or_else(|| PickleError::Global(format!("{module}.{name}")))
}

fn bad(detail: impl Into<String>) -> PickleError {
    PickleError::Malformed(detail.into())
}

/// Interprets `bytes` up to its STOP and returns the value it builds.
pub fn load(bytes: &[u8]) -> Result<Value, PickleError> {
    if bytes.len() > MAX_PICKLE_BYTES {
        return Err(bad(format!(
            "{} bytes of pickle, over the {} MB limit for a state dict",
            bytes.len(),
            MAX_PICKLE_BYTES >> 20
        )));
    }
    Machine {
        input: bytes,
        at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
        fuel: bytes.len().saturating_mul(16).saturating_add(1 << 20),
    }
    .run()
}

struct Machine<'a> {
    input: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u32, Value>,
    fuel: usize,
}

impl Machine<'_> {
    fn spend(&mut self, n: usize) -> Result<(), PickleError> {
        self.fuel = self
            .fuel
            .checked_sub(n)
            .ok_or_else(|| bad("builds far more objects than its size allows; it is not a plain state dict"))?;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or_else(|| bad(format!("ends inside an opcode's argument at byte {}", self.at)))?;
        let out = &self.input[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64, PickleError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, PickleError> {
        let len = self.uint(n)?;
        usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.input.len() - self.at)
            .ok_or_else(|| bad(format!("a length of {len} bytes runs past the end of the pickle")))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.input[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("a GLOBAL without its newline"))?;
        let text = String::from_utf8(rest[..end].to_vec()).map_err(|_| bad("a GLOBAL name that is not UTF-8"))?;
        self.at += end + 1;
        Ok(text)
    }

    fn text(&mut self, n: usize) -> Result<Value, PickleError> {
        let len = self.len(n)?;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec())
            .map(Value::Str)
            .map_err(|_| bad("a string that is not UTF-8"))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(bad("an opcode takes a value from below a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| bad("an opcode takes a value from an empty stack"))
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        self.stack
            .last_mut()
            .ok_or_else(|| bad("an opcode needs a value on an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| bad("an opcode needs a MARK that is not there"))?;
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let value = u32::try_from(key)
            .ok()
            .and_then(|k| self.memo.get(&k))
            .cloned()
            .ok_or_else(|| bad(format!("memo entry {key} is read before it is written")))?;
        self.spend(weight(&value))?;
        self.stack.push(value);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let key = u32::try_from(key).map_err(|_| bad("a memo key over 2^32"))?;
        let value = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| bad("memoizes an empty stack"))?;
        self.spend(weight(&value))?;
        self.memo.insert(key, value);
        Ok(())
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            self.spend(1)?;
            let at = self.at;
            let op = *self
                .take(1)
                .map_err(|_| bad("ends without a STOP opcode; the pickle is truncated"))?
                .first()
                .unwrap_or(&0);
            match op {
                0x80 => {
                    let version = self.uint(1)?;
                    if version > 5 {
                        return Err(bad(format!("pickle protocol {version}; PyTorch writes 2 to 5")));
                    }
                }
                0x95 => {
                    self.uint(8)?; // FRAME: a length hint
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.len(1)? } else { self.len(4)? };
                    let v = long(self.take(n)?)?;
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let raw: [u8; 8] = self.take(8)?.try_into().map_err(|_| bad("a short float"))?;
                    self.stack.push(Value::Float(f64::from_be_bytes(raw)));
                }
                b'X' => {
                    let v = self.text(4)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let v = self.text(1)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let v = self.text(8)?;
                    self.stack.push(v);
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let width = match op {
                        b'B' => 4,
                        b'C' => 1,
                        _ => 8,
                    };
                    let n = self.len(width)?;
                    self.take(n)?;
                    self.stack.push(Value::Bytes(n));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(pairs(items)?));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.stack.push(Value::Tuple(items));
                }
                b'q' | b'r' => {
                    let key = self.uint(if op == b'q' { 1 } else { 4 })?;
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'h' | b'j' => {
                    let key = self.uint(if op == b'h' { 1 } else { 4 })?;
                    self.memo_get(key)?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.spend(weight(&v))?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(global(&module, &name)?));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(bad("STACK_GLOBAL without two strings"));
                    };
                    self.stack.push(Value::Global(global(&module, &name)?));
                }
                b'Q' => {
                    let id = self.pop()?;
                    self.stack.push(persistent(id)?);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(reduce(callable, args)?);
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    match class {
                        Value::Global(Global::OrderedDict) => self.stack.push(Value::Dict(Vec::new())),
                        _ => return Err(bad(format!("NEWOBJ of {}", describe(&class)))),
                    }
                    drop(args);
                }
                b'b' => {
                    // BUILD: an object's state; a state dict's `_metadata` is dropped.
                    self.pop()?;
                    self.top()?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.spend(1)?;
                    match self.top()? {
                        Value::List(items) => items.push(v),
                        other => return Err(bad(format!("APPEND to {}", describe(other)))),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.spend(items.len())?;
                    match self.top()? {
                        Value::List(list) => list.extend(items),
                        other => return Err(bad(format!("APPENDS to {}", describe(other)))),
                    }
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.spend(1)?;
                    match self.top()? {
                        Value::Dict(entries) => entries.push((key, value)),
                        other => return Err(bad(format!("SETITEM on {}", describe(other)))),
                    }
                }
                b'u' => {
                    let items = pairs(self.pop_mark()?)?;
                    self.spend(items.len())?;
                    match self.top()? {
                        Value::Dict(entries) => entries.extend(items),
                        other => return Err(bad(format!("SETITEMS on {}", describe(other)))),
                    }
                }
                other => {
                    return Err(bad(format!(
                        "opcode 0x{other:02x} at byte {at} is not one a PyTorch state dict uses"
                    )));
                }
            }
        }
    }
}

/// Values a clone copies (fuel for BINGET/DUP/memoize).
fn weight(v: &Value) -> usize {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(weight).sum::<usize>() + 1,
        Value::Dict(entries) => entries.iter().map(|(k, v)| weight(k) + weight(v)).sum::<usize>() + 1,
        Value::Tensor(t) => t.shape.len() * 2 + 1,
        _ => 1,
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err(bad("a dict with an odd number of keys and values"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// LONG1/LONG4: little-endian two's complement, up to 8 bytes here.
fn long(raw: &[u8]) -> Result<i64, PickleError> {
    if raw.len() > 8 {
        return Err(bad(format!(
            "an integer of {} bytes; a state dict's fit in 8",
            raw.len()
        )));
    }
    let Some(&last) = raw.last() else { return Ok(0) };
    let fill = if last & 0x80 != 0 { 0xff } else { 0 };
    let mut bytes = [fill; 8];
    bytes[..raw.len()].copy_from_slice(raw);
    Ok(i64::from_le_bytes(bytes))
}

fn describe(v: &Value) -> String {
    match v {
        Value::Global(g) => format!("{g:?}"),
        Value::Tuple(_) => "a tuple".into(),
        Value::List(_) => "a list".into(),
        Value::Dict(_) => "a dict".into(),
        Value::Tensor(_) => "a tensor".into(),
        other => format!("{other:?}"),
    }
}

fn int(v: &Value, what: &str) -> Result<u64, PickleError> {
    match v {
        Value::Int(i) => u64::try_from(*i).map_err(|_| bad(format!("a negative {what} ({i})"))),
        other => Err(bad(format!("{what} is {} instead of an integer", describe(other)))),
    }
}

fn ints(v: &Value, what: &str) -> Result<Vec<u64>, PickleError> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| int(i, what)).collect(),
        other => Err(bad(format!("{what} is {} instead of a tuple", describe(other)))),
    }
}

/// BINPERSID: torch's `('storage', StorageType, key, location, numel)`.
fn persistent(id: Value) -> Result<Value, PickleError> {
    let Value::Tuple(items) = &id else {
        return Err(bad(format!("a persistent id that is {}", describe(&id))));
    };
    match items.as_slice() {
        [
            Value::Str(tag),
            Value::Global(Global::StorageType(dtype)),
            Value::Str(key),
            _location,
            numel,
        ] if tag == "storage" => Ok(Value::Storage(Storage {
            dtype,
            key: key.clone(),
            numel: int(numel, "a storage's size")?,
        })),
        _ => Err(bad(
            "a persistent id that is not torch's ('storage', type, key, location, size)",
        )),
    }
}

fn reduce(callable: Value, args: Value) -> Result<Value, PickleError> {
    let Value::Global(g) = callable else {
        return Err(bad(format!("REDUCE calls {}", describe(&callable))));
    };
    let Value::Tuple(args) = args else {
        return Err(bad("REDUCE's arguments are not a tuple"));
    };
    match g {
        Global::OrderedDict => Ok(Value::Dict(Vec::new())),
        Global::RebuildTensor | Global::RebuildTensorV2 => {
            let [storage, offset, shape, stride, ..] = args.as_slice() else {
                return Err(bad("_rebuild_tensor with fewer than 4 arguments"));
            };
            let Value::Storage(storage) = storage else {
                return Err(bad(format!(
                    "a tensor built on {} instead of a storage",
                    describe(storage)
                )));
            };
            let shape = ints(shape, "a tensor's size")?;
            let stride = ints(stride, "a tensor's stride")?;
            if shape.len() != stride.len() {
                return Err(bad(format!(
                    "a tensor of rank {} with {} strides",
                    shape.len(),
                    stride.len()
                )));
            }
            Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset: int(offset, "a storage offset")?,
                shape,
                stride,
            }))
        }
        Global::RebuildParameter | Global::RebuildParameterWithState => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err(bad("_rebuild_parameter without a tensor")),
        },
        Global::StorageType(_) => Err(bad("a storage class called directly")),
    }
}

/// Every tensor in a loaded value, by dotted path through its dicts (a
/// `state_dict` / `model` wrapper's tensors are `state_dict.…`), in pickle order.
pub fn tensors(value: &Value) -> Vec<(String, &TensorRef)> {
    fn walk<'v>(v: &'v Value, prefix: &str, out: &mut Vec<(String, &'v TensorRef)>) {
        match v {
            Value::Tensor(t) if !prefix.is_empty() => out.push((prefix.to_string(), t)),
            Value::Dict(entries) => {
                for (k, v) in entries {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    let path = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(v, &path, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_globals_outside_the_allow_list_by_name() {
        let evil = b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touchR.";
        assert_eq!(load(evil), Err(PickleError::Global("os.system".into())));
        let stacked = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        assert_eq!(load(stacked), Err(PickleError::Global("builtins.eval".into())));
    }

    #[test]
    fn hostile_lengths_and_truncation_are_errors() {
        // BINUNICODE claiming 4 GB, a memo read before it is written, no STOP.
        for input in [
            &b"\x80\x02X\xff\xff\xff\xff"[..],
            b"\x80\x02h\x07.",
            b"\x80\x02}",
            b"(((((t",
            b"",
        ] {
            assert!(matches!(load(input), Err(PickleError::Malformed(_))), "{input:?}");
        }
    }

    #[test]
    fn repeated_copies_run_out_of_fuel() {
        // A list doubled by DUP + APPEND in a loop: exponential without the fuel.
        let mut p = b"\x80\x02]".to_vec();
        for _ in 0..64 {
            p.extend_from_slice(b"2a");
        }
        p.push(b'.');
        assert!(matches!(load(&p), Err(PickleError::Malformed(m)) if m.contains("far more objects")));
    }

    #[test]
    fn long_integers_are_twos_complement() {
        assert_eq!(long(&[0xff]).ok(), Some(-1));
        assert_eq!(long(&[0x00, 0x01]).ok(), Some(256));
        assert_eq!(long(&[]).ok(), Some(0));
    }
}
