using Mono.Cecil;
using Mono.Cecil.Cil;

namespace Microsoft.ML.LabelCompletion.Tests.Architecture;

/// <summary>
/// The types each type of an assembly refers to, read from its metadata and IL with Mono.Cecil: base type, interfaces,
/// attributes, fields, properties, events, method signatures, locals and every type, method or field an instruction
/// names (generic arguments included). Nested and compiler-generated types count for the type that declares them.
/// </summary>
internal static class TypeDependencies
{
    /// <summary>Full name of every top-level type in <paramref name="assemblyPath"/> → full names of the types it uses.</summary>
    public static Dictionary<string, HashSet<string>> Read(string assemblyPath)
    {
        using var module = ModuleDefinition.ReadModule(assemblyPath);
        var result = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var type in module.Types.Where(t => t.Name != "<Module>"))
        {
            var used = new HashSet<string>(StringComparer.Ordinal);
            Collect(type, used);
            used.Remove(type.FullName);
            result[type.FullName] = used;
        }
        return result;
    }

    private static void Collect(TypeDefinition type, HashSet<string> used)
    {
        Add(type.BaseType, used);
        foreach (var i in type.Interfaces) Add(i.InterfaceType, used);
        Attributes(type, used);
        foreach (var field in type.Fields)
        {
            Add(field.FieldType, used);
            Attributes(field, used);
        }
        foreach (var property in type.Properties) Add(property.PropertyType, used);
        foreach (var e in type.Events) Add(e.EventType, used);
        foreach (var method in type.Methods)
        {
            Attributes(method, used);
            Add(method.ReturnType, used);
            foreach (var parameter in method.Parameters) Add(parameter.ParameterType, used);
            if (!method.HasBody) continue;
            foreach (var local in method.Body.Variables) Add(local.VariableType, used);
            foreach (var instruction in method.Body.Instructions) Operand(instruction, used);
        }
        foreach (var nested in type.NestedTypes) Collect(nested, used);
    }

    private static void Operand(Instruction instruction, HashSet<string> used)
    {
        switch (instruction.Operand)
        {
            case TypeReference t:
                Add(t, used);
                break;
            case MethodReference m:
                Add(m.DeclaringType, used);
                Add(m.ReturnType, used);
                foreach (var p in m.Parameters) Add(p.ParameterType, used);
                if (m is GenericInstanceMethod g) foreach (var a in g.GenericArguments) Add(a, used);
                break;
            case FieldReference f:
                Add(f.DeclaringType, used);
                Add(f.FieldType, used);
                break;
        }
    }

    private static void Attributes(ICustomAttributeProvider provider, HashSet<string> used)
    {
        foreach (var attribute in provider.CustomAttributes) Add(attribute.AttributeType, used);
    }

    private static void Add(TypeReference? type, HashSet<string> used)
    {
        while (type is TypeSpecification spec and not GenericInstanceType) type = spec.ElementType; // arrays, by-ref, pointers
        if (type is null || type is GenericParameter) return;
        if (type is GenericInstanceType generic)
        {
            foreach (var argument in generic.GenericArguments) Add(argument, used);
            type = generic.ElementType;
        }
        while (type.DeclaringType is not null) type = type.DeclaringType; // nested types count as their outer type
        if (used.Add(type.FullName) && type is GenericInstanceType) Add(type, used);
    }
}
