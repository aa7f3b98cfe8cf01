using System.Text;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The parts of an ONNX model file that a frozen convolutional network needs: the graph's nodes in order (operator, inputs,
/// outputs, integer attributes) and its float initializers (name, shape, values). A reader of the protobuf wire format,
/// bounded by the file: every length is checked against the bytes left before anything is allocated, and a file larger
/// than <see cref="MaxFileBytes"/> is refused before it is read.
/// </summary>
internal sealed class OnnxGraph
{
    /// <summary>Largest ONNX file read: 512 MiB.</summary>
    public const long MaxFileBytes = 512L << 20;

    /// <summary>One node of the graph.</summary>
    /// <param name="Operator">The ONNX operator (<c>Conv</c>, <c>BatchNormalization</c>, <c>Relu</c>, ...).</param>
    /// <param name="Name">The node's name.</param>
    /// <param name="Inputs">Names of its inputs.</param>
    /// <param name="Outputs">Names of its outputs.</param>
    /// <param name="Ints">Its integer and integer-list attributes (a single integer as a list of one).</param>
    /// <param name="Floats">Its float attributes.</param>
    public sealed record Node(string Operator, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
        IReadOnlyDictionary<string, long[]> Ints, IReadOnlyDictionary<string, float> Floats);

    /// <summary>A float tensor stored in the file.</summary>
    /// <param name="Shape">Its dimensions.</param>
    /// <param name="Values">Its values, row-major.</param>
    public sealed record Initializer(long[] Shape, float[] Values);

    /// <summary>The nodes in file order (ONNX requires a topological order).</summary>
    public List<Node> Nodes { get; } = new();

    /// <summary>The float initializers by name.</summary>
    public Dictionary<string, Initializer> Initializers { get; } = new(StringComparer.Ordinal);

    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not an ONNX model this reader understands (the message says why).</exception>
    public static OnnxGraph Read(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"The ONNX file '{path}' does not exist.", path);
        if (info.Length > MaxFileBytes)
            throw new InvalidDataException($"{path}: {info.Length} bytes, more than the {MaxFileBytes >> 20} MiB an image encoder may have.");
        var bytes = File.ReadAllBytes(path);
        var graph = new OnnxGraph();
        try
        {
            // ModelProto: 7 = graph.
            var model = new Reader(bytes, 0, bytes.Length);
            bool found = false;
            while (model.Next(out int field, out int wire))
            {
                if (field == 7 && wire == 2) { graph.ReadGraph(model.Message()); found = true; }
                else model.Skip(wire);
            }
            if (!found) throw new InvalidDataException("it has no graph");
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentOutOfRangeException or OverflowException)
        {
            throw new InvalidDataException($"{path}: not a readable ONNX model ({e.Message}).", e);
        }
        return graph;
    }

    private void ReadGraph(Reader graph)
    {
        // GraphProto: 1 = node, 5 = initializer.
        while (graph.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 2) Nodes.Add(ReadNode(graph.Message()));
            else if (field == 5 && wire == 2) ReadInitializer(graph.Message());
            else graph.Skip(wire);
        }
    }

    private static Node ReadNode(Reader node)
    {
        // NodeProto: 1 = input, 2 = output, 3 = name, 4 = op_type, 5 = attribute.
        var inputs = new List<string>();
        var outputs = new List<string>();
        string name = "", op = "";
        var ints = new Dictionary<string, long[]>(StringComparer.Ordinal);
        var floats = new Dictionary<string, float>(StringComparer.Ordinal);
        while (node.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == 2: inputs.Add(node.String()); break;
                case 2 when wire == 2: outputs.Add(node.String()); break;
                case 3 when wire == 2: name = node.String(); break;
                case 4 when wire == 2: op = node.String(); break;
                case 5 when wire == 2: ReadAttribute(node.Message(), ints, floats); break;
                default: node.Skip(wire); break;
            }
        }
        return new Node(op, name, inputs, outputs, ints, floats);
    }

    private static void ReadAttribute(Reader attribute, Dictionary<string, long[]> ints, Dictionary<string, float> floats)
    {
        // AttributeProto: 1 = name, 2 = f, 3 = i, 8 = ints (packed or not).
        string name = "";
        float? f = null;
        var list = new List<long>();
        bool hasInts = false;
        while (attribute.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 2) name = attribute.String();
            else if (field == 2 && wire == 5) f = attribute.Float();
            else if (field == 3 && wire == 0) { list.Add(attribute.Varint()); hasInts = true; }
            else if (field == 8 && wire == 0) { list.Add(attribute.Varint()); hasInts = true; }
            else if (field == 8 && wire == 2)
            {
                var packed = attribute.Message();
                while (!packed.AtEnd) list.Add(packed.Varint());
                hasInts = true;
            }
            else attribute.Skip(wire);
        }
        if (hasInts) ints[name] = list.ToArray();
        if (f is { } value) floats[name] = value;
    }

    private void ReadInitializer(Reader tensor)
    {
        // TensorProto: 1 = dims, 2 = data_type (1 = float), 4 = float_data, 8 = name, 9 = raw_data.
        var dims = new List<long>();
        int type = 0;
        string name = "";
        float[]? values = null;
        var floatData = new List<float>();
        while (tensor.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == 0: dims.Add(tensor.Varint()); break;
                case 1 when wire == 2:
                    var packedDims = tensor.Message();
                    while (!packedDims.AtEnd) dims.Add(packedDims.Varint());
                    break;
                case 2 when wire == 0: type = (int)tensor.Varint(); break;
                case 4 when wire == 2:
                    var packed = tensor.Message();
                    while (!packed.AtEnd) floatData.Add(packed.Float());
                    break;
                case 4 when wire == 5: floatData.Add(tensor.Float()); break;
                case 8 when wire == 2: name = tensor.String(); break;
                case 9 when wire == 2:
                    var raw = tensor.Bytes();
                    if (raw.Length % 4 != 0) throw new InvalidDataException($"initializer '{name}' has {raw.Length} raw bytes, not whole floats");
                    values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw).ToArray();
                    if (!BitConverter.IsLittleEndian) throw new InvalidDataException("big-endian hosts are not supported");
                    break;
                default: tensor.Skip(wire); break;
            }
        }
        if (type != 1) return; // only float tensors are weights of the networks read here
        values ??= floatData.ToArray();
        long count = dims.Aggregate(1L, (a, d) => d < 0 ? throw new InvalidDataException($"initializer '{name}' has a negative dimension") : checked(a * d));
        if (count != values.Length)
            throw new InvalidDataException($"initializer '{name}' has shape [{string.Join(", ", dims)}] but {values.Length} values");
        Initializers[name] = new Initializer(dims.ToArray(), values);
    }

    /// <summary>A view of protobuf wire-format bytes with bounds checks.</summary>
    private sealed class Reader(byte[] bytes, int start, int end)
    {
        private int _position = start;

        public bool AtEnd => _position >= end;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (AtEnd) return false;
            long key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            return true;
        }

        public long Varint()
        {
            long value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_position >= end) throw new InvalidDataException("a number runs past its message");
                byte b = bytes[_position++];
                value |= (long)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return value;
            }
            throw new InvalidDataException("a number is longer than 10 bytes");
        }

        public float Float()
        {
            Need(4);
            float value = BitConverter.ToSingle(bytes, _position);
            _position += 4;
            return value;
        }

        public Reader Message()
        {
            int length = Length();
            var inner = new Reader(bytes, _position, _position + length);
            _position += length;
            return inner;
        }

        public ReadOnlySpan<byte> Bytes()
        {
            int length = Length();
            var span = new ReadOnlySpan<byte>(bytes, _position, length);
            _position += length;
            return span;
        }

        public string String()
        {
            int length = Length();
            if (length > 4096) throw new InvalidDataException($"a name of {length} bytes");
            var text = Encoding.UTF8.GetString(bytes, _position, length);
            _position += length;
            return text;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Need(8); _position += 8; break;
                case 2: int length = Length(); _position += length; break;
                case 5: Need(4); _position += 4; break;
                default: throw new InvalidDataException($"wire type {wire} is not used by ONNX");
            }
        }

        private int Length()
        {
            long length = Varint();
            if (length < 0 || length > end - _position) throw new InvalidDataException("a field is longer than what is left of its message");
            return (int)length;
        }

        private void Need(int count)
        {
            if (end - _position < count) throw new InvalidDataException("a field runs past its message");
        }
    }
}
