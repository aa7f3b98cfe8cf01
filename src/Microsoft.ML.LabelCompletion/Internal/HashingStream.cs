using System.Security.Cryptography;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>
/// A forward-only stream that passes reads or writes through to an inner stream and hashes every byte (SHA-256), so the
/// weights entry of a saved model can be checked without holding it in memory twice. Does not own the inner stream.
/// </summary>
internal sealed class HashingStream : Stream
{
    private readonly Stream _inner;
    private readonly bool _writing;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _length;

    /// <summary>Wraps <paramref name="inner"/> for reading (<paramref name="writing"/> false) or writing.</summary>
    public HashingStream(Stream inner, bool writing)
    {
        _inner = inner;
        _writing = writing;
    }

    /// <summary>Bytes that went through so far.</summary>
    public long BytesHashed => _length;

    /// <summary>Reads what is left of the inner stream (so the hash covers all of it) and returns the SHA-256.</summary>
    public byte[] Finish()
    {
        if (!_writing)
        {
            var buffer = new byte[81920];
            while (Read(buffer, 0, buffer.Length) > 0) { }
        }
        return _hash.GetHashAndReset();
    }

    public override bool CanRead => !_writing;
    public override bool CanSeek => false;
    public override bool CanWrite => _writing;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _length; set => throw new NotSupportedException(); }
    public override void Flush() => _inner.Flush();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_writing) throw new NotSupportedException();
        int n = _inner.Read(buffer);
        _hash.AppendData(buffer[..n]);
        _length += n;
        return n;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (!_writing) throw new NotSupportedException();
        _inner.Write(buffer);
        _hash.AppendData(buffer);
        _length += buffer.Length;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}
