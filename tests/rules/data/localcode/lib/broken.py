def use(path):
    import knot_no_such_package_xyz

    knot_no_such_package_xyz.write(path)
