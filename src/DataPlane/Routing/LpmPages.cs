using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Routing;

/// <summary>
/// A copy-on-write array of 4-byte LPM entries in fixed pages of <see cref="PageSize"/> entries (256 KiB), reached
/// through a page directory of raw pointers. <see cref="Share"/> hands the current directory to an immutable table
/// in O(pages); the next write to a page copies that one page only, so a route change after a publish costs the
/// pages under its prefix, not the whole table (the first write used to copy the 64 MiB tbl24). Pages no snapshot
/// changed stay shared between all snapshots, and the garbage collector frees a page once no directory holds it.
/// Control path only: the lookups read <see cref="PageDirectory"/>.
/// </summary>
/// <remarks>
/// Why a directory and not one flat array per snapshot: a flat array must be copied whole on the first write after a
/// publish (or remapped page by page from a memfd, which here would be on 4 KiB pages: no hugetlb pages reserved and
/// shmem THP off, so random lookups would lose the huge-page TLB reach). The directory of a full tbl24 is 256
/// pointers (2 KiB). A table built from scratch maps every page into one huge-page-backed array
/// (<see cref="HugePages"/>), which <see cref="PageDirectory.Contiguous"/> hands to the lookup as a flat tbl24;
/// a later table gets a flat copy off the change path (<c>LpmTable4.Flatten</c>), so the directory's extra load is
/// paid only until then (docs/BENCHMARKS.md, issue 20).
/// </remarks>
internal sealed unsafe class LpmPages
{
    public const int PageBits = 16;
    public const int PageSize = 1 << PageBits;
    public const int PageMask = PageSize - 1;

    // _dir holds page pointers (pinned so readers can keep a pointer to it); _owners keeps each page's array alive
    // (one big base array or a page of its own); _owned marks the pages written since the last Share.
    private nint[] _dir;
    private uint[][] _owners;
    private bool[] _owned;

    /// <param name="pages">Pages to start with.</param>
    /// <param name="fill">Their initial entry.</param>
    /// <param name="hugeBase">One huge-page-backed array for all of them (the tbl24), or a page array each.</param>
    public LpmPages(int pages, uint fill, bool hugeBase)
    {
        _dir = GC.AllocateArray<nint>(Math.Max(1, pages), pinned: true);
        _owners = new uint[Math.Max(1, pages)][];
        _owned = new bool[Math.Max(1, pages)];
        if (hugeBase)
        {
            var array = HugePages.AllocateUInt32(pages * PageSize);
            Array.Fill(array, fill);
            uint* p = Address(array);
            for (int i = 0; i < pages; i++) (_dir[i], _owners[i], _owned[i]) = ((nint)(p + (long)i * PageSize), array, true);
        }
        else
        {
            for (int i = 0; i < pages; i++) NewPage(i, fill);
        }
        PageCount = pages;
    }

    public int PageCount { get; private set; }

    public int Length => PageCount * PageSize;

    public uint this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ((uint*)_dir[index >> PageBits])[index & PageMask];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => Writable(index >> PageBits)[index & PageMask] = value;
    }

    /// <summary>
    /// <paramref name="count"/> entries from <paramref name="start"/> for writing, copying their page first if a
    /// snapshot shares it. The range must lie in one page (a tbl8 group does: pages hold whole groups).
    /// </summary>
    public Span<uint> WritableRange(int start, int count)
    {
        Span<uint> page = Writable(start >> PageBits);
        return page.Slice(start & PageMask, count);
    }

    /// <summary>Entries for reading only (no copy).</summary>
    public ReadOnlySpan<uint> ReadRange(int start, int count) =>
        new((uint*)_dir[start >> PageBits] + (start & PageMask), count);

    /// <summary>Appends zeroed pages (a growing tbl8 pool); existing pages are not copied.</summary>
    public void Grow(int pages)
    {
        int total = PageCount + pages;
        if (total > _dir.Length)
        {
            int size = Math.Max(total, _dir.Length * 2);
            var dir = GC.AllocateArray<nint>(size, pinned: true);
            _dir.AsSpan(0, PageCount).CopyTo(dir);
            _dir = dir;
            Array.Resize(ref _owners, size);
            Array.Resize(ref _owned, size);
        }
        for (int i = PageCount; i < total; i++) NewPage(i, 0);
        PageCount = total;
    }

    /// <summary>
    /// The pages as they are now, for an immutable table; every page becomes shared, so the next write to it copies.
    /// </summary>
    public PageDirectory Share()
    {
        var dir = GC.AllocateUninitializedArray<nint>(PageCount, pinned: true);
        _dir.AsSpan(0, PageCount).CopyTo(dir);
        var owners = _owners.AsSpan(0, PageCount).ToArray();
        _owned.AsSpan(0, PageCount).Clear();
        return new PageDirectory(dir, owners);
    }

    private Span<uint> Writable(int page)
    {
        if (!_owned[page])
        {
            var copy = GC.AllocateUninitializedArray<uint>(PageSize, pinned: true);
            new ReadOnlySpan<uint>((uint*)_dir[page], PageSize).CopyTo(copy);
            (_dir[page], _owners[page], _owned[page]) = ((nint)Address(copy), copy, true);
        }
        return new Span<uint>((uint*)_dir[page], PageSize);
    }

    private void NewPage(int i, uint fill)
    {
        var page = GC.AllocateArray<uint>(PageSize, pinned: true);
        if (fill != 0) Array.Fill(page, fill);
        (_dir[i], _owners[i], _owned[i]) = ((nint)Address(page), page, true);
    }

    private static uint* Address(uint[] array) => (uint*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
}

/// <summary>
/// An immutable table's view of <see cref="LpmPages"/>: the page pointers (pinned, read through <see cref="Pages"/>)
/// and the arrays that hold them, kept so the pages live as long as the table.
/// </summary>
internal sealed unsafe class PageDirectory
{
    private readonly nint[] _dir;
    private readonly uint[][] _owners;

    public PageDirectory(nint[] dir, uint[][] owners)
    {
        _dir = dir;
        _owners = owners;
        Pages = (uint**)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(dir));
        Contiguous = (uint*)dir[0];
        for (int i = 1; i < dir.Length && Contiguous != null; i++)
            if (dir[i] != (nint)(Contiguous + (long)i * LpmPages.PageSize)) Contiguous = null;
    }

    /// <summary>
    /// The first page if every page follows it in one array (a table built from scratch: the huge-page base, no page
    /// copied since), so entry i is <c>Contiguous[i]</c>; null once a page was copied elsewhere.
    /// </summary>
    public uint* Contiguous { get; }

    /// <summary>Copies every page, in order, into <paramref name="flat"/> (<see cref="PageCount"/> pages long).</summary>
    public void CopyTo(Span<uint> flat)
    {
        for (int i = 0; i < _dir.Length; i++)
            new ReadOnlySpan<uint>((uint*)_dir[i], LpmPages.PageSize).CopyTo(flat.Slice(i * LpmPages.PageSize, LpmPages.PageSize));
    }

    /// <summary>Page pointers: entry i is <c>Pages[i &gt;&gt; LpmPages.PageBits][i &amp; LpmPages.PageMask]</c>.</summary>
    public uint** Pages { get; }

    public int PageCount => _dir.Length;

    /// <summary>Whether page <paramref name="page"/> is the same memory as in <paramref name="other"/>.</summary>
    public bool SharesPage(PageDirectory other, int page) => _dir[page] == other._dir[page];
}
